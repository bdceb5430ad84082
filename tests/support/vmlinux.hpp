#pragma once
// A minimal vmlinux for tests: an ELF64 x86-64 executable with one PT_LOAD per segment (its
// file bytes follow the headers, in order), linked at the kernel's usual virtual base.
#include <elf.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace stockade::test {

struct ElfSegment {
    std::uint64_t paddr = 0;
    std::vector<std::uint8_t> bytes;  // what the file holds; memsz may be larger
    std::uint64_t memsz = 0;
};

inline std::vector<std::uint8_t> elf_vmlinux(const std::vector<ElfSegment>& segs,
                                             std::uint64_t entry) {
    const std::size_t headers = sizeof(Elf64_Ehdr) + segs.size() * sizeof(Elf64_Phdr);
    std::vector<std::uint8_t> f(headers);
    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_EXEC;
    eh.e_machine = EM_X86_64;
    eh.e_version = EV_CURRENT;
    eh.e_entry = entry;
    eh.e_phoff = sizeof eh;
    eh.e_ehsize = sizeof eh;
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = static_cast<std::uint16_t>(segs.size());
    std::memcpy(f.data(), &eh, sizeof eh);
    for (std::size_t i = 0; i < segs.size(); ++i) {
        Elf64_Phdr ph{};
        ph.p_type = PT_LOAD;
        ph.p_flags = PF_R | PF_W | PF_X;
        ph.p_offset = f.size();
        ph.p_paddr = segs[i].paddr;
        ph.p_vaddr = 0xffffffff80000000ull + segs[i].paddr;
        ph.p_filesz = segs[i].bytes.size();
        ph.p_memsz = segs[i].memsz;
        std::memcpy(f.data() + sizeof eh + i * sizeof ph, &ph, sizeof ph);
        f.insert(f.end(), segs[i].bytes.begin(), segs[i].bytes.end());
    }
    return f;
}

}  // namespace stockade::test
