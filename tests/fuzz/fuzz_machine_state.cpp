// A snapshot's machine state as a restore decodes it (runner/vmm/machine_state.hpp), from
// any bytes: an unsealed snapshot is a file anyone with access may have changed. Nothing may
// crash or allocate beyond what the bytes describe, and the encoding is canonical: whatever
// decodes must encode back to exactly the same bytes (so no field is read loosely).
// STOCKADE_FUZZ_WRITE_SEEDS=DIR makes the binary write its seeds there and exit.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <span>
#include <string>

#include "runner/vmm/machine_state.hpp"

namespace {

using namespace stockade;

// One vCPU (its XSAVE area alone is 4 KiB) and two functions; and a machine with none.
void write_seeds(const std::string& dir) {
    MachineState s;
    kvm::VcpuState c;
    c.regs.rip = 0x100000;
    c.msrs = {{0x10, 0, 42}};
    c.tsc_khz = 2'000'000;
    s.vcpus.push_back(c);
    s.serial.rx = {'x'};
    s.pci.bars = {{1, 0, 0x8000, 0x10'0000'0000}};
    FunctionState f;
    f.slot = 1;
    f.transport.msix.entries.resize(2);
    f.transport.msix.pending = {false, true};
    f.transport.queues = {{256, 0x1000, 0x2000, 0x3000, 0, true}};
    f.device.queues = {{3, 3}};
    s.functions = {f, f};
    s.functions[1].slot = 2;
    const auto one = encode_machine_state(s);
    std::ofstream(dir + "/one-vcpu", std::ios::binary)
        .write(reinterpret_cast<const char*>(one.data()), static_cast<std::streamsize>(one.size()));
    const auto none = encode_machine_state(MachineState{});
    std::ofstream(dir + "/empty", std::ios::binary)
        .write(reinterpret_cast<const char*>(none.data()),
               static_cast<std::streamsize>(none.size()));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    if (const char* dir = std::getenv("STOCKADE_FUZZ_WRITE_SEEDS")) {
        write_seeds(dir);
        std::exit(0);
    }
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> in(data, size);
    auto decoded = decode_machine_state(in);
    if (!decoded) return 0;
    const auto again = encode_machine_state(*decoded);
    if (again.size() != size || !std::equal(again.begin(), again.end(), in.begin()))
        __builtin_trap();  // accepted bytes that are not what the state encodes to
    return 0;
}
