#pragma once
// Kernel uapi headers, made correct for C++. Include this instead of <linux/kvm.h>,
// <linux/vhost.h> or <linux/vfio.h>.
//
// Why: Debian 12's <linux/stddef.h> declares flexible arrays inside an anonymous struct
// holding an empty struct. An empty struct has size 0 in C but 1 in C++, so in C++
// sizeof(kvm_cpuid2) is 12 instead of 8, and every ioctl number computed from such a
// struct (KVM_SET_CPUID2, KVM_SET_MSRS, KVM_SET_GSI_ROUTING, ...) is wrong: the kernel
// answers EINVAL. Redefining the macro before the headers use it restores the C layout;
// the static_asserts below catch any path that included the headers first.
#include <cstddef>

#include <linux/stddef.h>
#undef __DECLARE_FLEX_ARRAY
#define __DECLARE_FLEX_ARRAY(TYPE, NAME) TYPE NAME[0]

// <linux/virtio_ring.h> (pulled in by vhost) has a legacy inline helper that is not C++.
#ifndef VIRTIO_RING_NO_LEGACY
#define VIRTIO_RING_NO_LEGACY
#endif

#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/vfio.h>
#include <linux/vhost.h>

static_assert(sizeof(kvm_cpuid2) == 8, "kvm_cpuid2 has its C layout");
static_assert(sizeof(kvm_msrs) == 8, "kvm_msrs has its C layout");
static_assert(sizeof(kvm_msr_list) == 4, "kvm_msr_list has its C layout");
static_assert(sizeof(kvm_irq_routing) == 8, "kvm_irq_routing has its C layout");
static_assert(sizeof(kvm_xsave) == 4096, "kvm_xsave has its C layout");
static_assert(sizeof(kvm_signal_mask) == 4, "kvm_signal_mask has its C layout");
static_assert(sizeof(vhost_memory) == 8, "vhost_memory has its C layout");
static_assert(KVM_SET_CPUID2 == 0x4008ae90, "KVM_SET_CPUID2 encodes the C struct size");

// FlexBuffer (base/flex_buffer.hpp) puts the entries right after the header.
static_assert(offsetof(kvm_cpuid2, entries) == sizeof(kvm_cpuid2));
static_assert(offsetof(kvm_msrs, entries) == sizeof(kvm_msrs));
static_assert(offsetof(kvm_msr_list, indices) == sizeof(kvm_msr_list));
static_assert(offsetof(kvm_irq_routing, entries) == sizeof(kvm_irq_routing));
static_assert(offsetof(vhost_memory, regions) == sizeof(vhost_memory));
