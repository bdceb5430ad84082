#pragma once
// What a thread may call to start and stop a kernel vhost backend with the driver (the
// device's activation and reset): the vring set-up every vhost device kind shares.
#include "base/uapi.hpp"
#include "policy/seccomp.hpp"

namespace stockade {

inline policy::SeccompProfile& allow_vhost_rings(policy::SeccompProfile& p) {
    return p.allow_ioctl(
        {STOCKADE_IOCTL(VHOST_SET_FEATURES), STOCKADE_IOCTL(VHOST_SET_MEM_TABLE),
         STOCKADE_IOCTL(VHOST_SET_VRING_NUM), STOCKADE_IOCTL(VHOST_SET_VRING_BASE),
         STOCKADE_IOCTL(VHOST_GET_VRING_BASE), STOCKADE_IOCTL(VHOST_SET_VRING_ADDR),
         STOCKADE_IOCTL(VHOST_SET_VRING_KICK), STOCKADE_IOCTL(VHOST_SET_VRING_CALL)});
}

}  // namespace stockade
