#include "runner/arch/x86/cpu_setup.hpp"

#include <cstring>

#include "runner/arch/x86/layout.hpp"

namespace stockade::x86 {
namespace {

constexpr std::uint64_t kCr0Pe = 1u << 0, kCr0Mp = 1u << 1, kCr0Et = 1u << 4, kCr0Ne = 1u << 5,
                        kCr0Pg = 1u << 31;
constexpr std::uint64_t kCr4Pae = 1u << 5;
constexpr std::uint64_t kEferLme = 1u << 8, kEferLma = 1u << 10;

constexpr std::uint32_t kMsrTsc = 0x10, kMsrSysenterCs = 0x174, kMsrSysenterEsp = 0x175,
                        kMsrSysenterEip = 0x176, kMsrMiscEnable = 0x1a0, kMsrMtrrDefType = 0x2ff,
                        kMsrStar = 0xc000'0081, kMsrLstar = 0xc000'0082, kMsrCstar = 0xc000'0083,
                        kMsrSyscallMask = 0xc000'0084, kMsrKernelGsBase = 0xc000'0102;
constexpr std::uint64_t kMiscEnableFastString = 1;
constexpr std::uint64_t kMtrrEnableWriteBack = (1u << 11) | 6;  // MTRRs on, default type WB

constexpr std::size_t kLapicLvt0 = 0x350, kLapicLvt1 = 0x360;
constexpr std::uint32_t kDeliveryModeMask = 0x700, kDeliveryExtInt = 0x700, kDeliveryNmi = 0x400;

}  // namespace

Gdt boot_gdt() {
    Gdt g{};
    g[kGdtCode] = gdt_entry(0xa09b, 0, 0xfffff);  // 64-bit code, present, DPL 0
    g[kGdtData] = gdt_entry(0xc093, 0, 0xfffff);  // 32-bit data, present, DPL 0
    g[kGdtTss] = gdt_entry(0x808b, 0, 0xfffff);   // busy 64-bit TSS
    return g;
}

kvm_segment segment_from_gdt(const Gdt& gdt, std::size_t index) {
    const std::uint64_t e = gdt[index];
    kvm_segment s{};
    s.base = ((e >> 16) & 0xff'ffff) | (((e >> 56) & 0xff) << 24);
    std::uint32_t limit = static_cast<std::uint32_t>((e & 0xffff) | (((e >> 48) & 0xf) << 16));
    s.g = (e >> 55) & 1;
    s.limit = s.g ? (limit << 12) | 0xfff : limit;
    s.selector = static_cast<std::uint16_t>(index * 8);
    s.type = (e >> 40) & 0xf;
    s.s = (e >> 44) & 1;
    s.dpl = (e >> 45) & 3;
    s.present = (e >> 47) & 1;
    s.avl = (e >> 52) & 1;
    s.l = (e >> 53) & 1;
    s.db = (e >> 54) & 1;
    s.unusable = s.present ? 0 : 1;
    return s;
}

Result<> setup_common_cpu_state(kvm::Vcpu& vcpu) {
    kvm_fpu fpu{};
    fpu.fcw = 0x37f;
    fpu.mxcsr = 0x1f80;
    STOCKADE_TRY_VOID(vcpu.set_fpu(fpu));
    const kvm_msr_entry msrs[] = {
        {kMsrSysenterCs, 0, 0},
        {kMsrSysenterEsp, 0, 0},
        {kMsrSysenterEip, 0, 0},
        {kMsrStar, 0, 0},
        {kMsrCstar, 0, 0},
        {kMsrKernelGsBase, 0, 0},
        {kMsrSyscallMask, 0, 0},
        {kMsrLstar, 0, 0},
        {kMsrTsc, 0, 0},
        {kMsrMiscEnable, 0, kMiscEnableFastString},
        {kMsrMtrrDefType, 0, kMtrrEnableWriteBack},
    };
    return vcpu.set_msrs(msrs);
}

Result<> setup_boot_cpu(kvm::Vcpu& vcpu, const GuestMemory& mem, std::uint64_t entry) {
    const Gdt gdt = boot_gdt();
    STOCKADE_TRY_VOID(mem.write_obj(kGdtAddr, gdt));

    kvm_sregs s = STOCKADE_TRY(vcpu.sregs());
    s.gdt.base = kGdtAddr;
    s.gdt.limit = sizeof(gdt) - 1;
    s.idt.base = 0;
    s.idt.limit = 0;  // interrupts stay disabled until the kernel loads its own IDT
    s.cs = segment_from_gdt(gdt, kGdtCode);
    s.ds = s.es = s.fs = s.gs = s.ss = segment_from_gdt(gdt, kGdtData);
    s.tr = segment_from_gdt(gdt, kGdtTss);
    s.cr0 = kCr0Pe | kCr0Mp | kCr0Et | kCr0Ne | kCr0Pg;  // caches on (CD/NW clear)
    s.cr3 = kPml4Addr;
    s.cr4 = kCr4Pae;
    s.efer = kEferLme | kEferLma;
    STOCKADE_TRY_VOID(vcpu.set_sregs(s));

    kvm_regs r{};
    r.rflags = 0x2;
    r.rip = entry;
    r.rsi = kZeroPageAddr;
    r.rsp = kBootStackTop;
    r.rbp = kBootStackTop;
    return vcpu.set_regs(r);
}

Result<> setup_lapic_lint(kvm::Vcpu& vcpu) {
    kvm_lapic_state l = STOCKADE_TRY(vcpu.lapic());
    auto patch = [&](std::size_t off, std::uint32_t mode) {
        std::uint32_t v;
        std::memcpy(&v, l.regs + off, 4);
        v = (v & ~kDeliveryModeMask) | mode;
        std::memcpy(l.regs + off, &v, 4);
    };
    patch(kLapicLvt0, kDeliveryExtInt);
    patch(kLapicLvt1, kDeliveryNmi);
    return vcpu.set_lapic(l);
}

}  // namespace stockade::x86
