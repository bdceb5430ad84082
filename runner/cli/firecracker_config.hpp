#pragma once
// `stockade run --config-file vm.json`: Firecracker's JSON configuration (its swagger file's
// FullVmConfiguration, as `firecracker --config-file` takes it), turned into the `stockade
// run` options it means, so that the file goes through the very checks the command line does
// and command-line options given after it override it. Everything stockade cannot honour is
// refused, naming the JSON path and why. Pure (no I/O); unit-tested field by field.
//
//   boot-source        kernel_image_path -> --kernel, initrd_path -> --initrd, boot_args ->
//                      --cmdline (added to stockade's own; pci=off is refused: stockade's
//                      devices are on PCI)
//   machine-config     vcpu_count -> --vcpus, mem_size_mib -> --memory, huge_pages "None" ->
//                      --huge-pages off, "2M" -> thp; smt and track_dirty_pages only false,
//                      cpu_template only null
//   drives             is_root_device -> --rootfs, the others -> --disk, is_read_only -> ,ro;
//                      partuuid, rate_limiter and socket (vhost-user) only null, io_engine
//                      only "Sync", cache_type "Unsafe" or "Writeback" (flushes always reach
//                      the disk)
//   entropy            -> --rng (rate_limiter only null)
//   network-interfaces at most one: host_dev_name, guest_mac -> --net tap=NAME,mac=MAC (the
//                      existing tap, left as it is); iface_id required, otherwise unused;
//                      rx_rate_limiter and tx_rate_limiter only null
//   vsock              refused: Firecracker's hybrid vsock over a Unix socket (uds_path) is
//                      not offered; stockade's vsock carries the workload's stdio
//   metrics            metrics_path -> --metrics-path
//   logger             refused: a log file is not supported yet
//   balloon, cpu-config, mmds-config   only null
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"

namespace stockade {

[[nodiscard]] Result<std::vector<std::string>> firecracker_config_args(std::string_view json_text);

}  // namespace stockade
