#!/usr/bin/env python3
"""Writes the seed corpora under seeds/: a few well-formed inputs (layout in
guest_image.hpp) so that fuzzing starts from valid rings and requests."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
NEXT, WRITE, INDIRECT = 1, 2, 4
DESC, AVAIL, USED = 0x100, 0x200, 0x300


def image(size, flags, script, ram):
    """Header, script (list of (offset, value) or None), and a sparse RAM dict."""
    out = struct.pack('<HBBQQQ', size, flags, len(script), DESC, AVAIL, USED)
    for s in script:
        out += struct.pack('<HH', *(s if s else (0xffff, 0)))
    top = max(addr + len(b) for addr, b in ram.items())
    mem = bytearray(top)
    for addr, b in ram.items():
        mem[addr:addr + len(b)] = b
    return out + bytes(mem)


def desc(addr, length, flags=0, nxt=0):
    return struct.pack('<QIHH', addr, length, flags, nxt)


def ring(size, chains):
    """avail ring offering `chains` (head indices) and the descriptor tables."""
    return struct.pack('<HH', 0, len(chains)) + b''.join(struct.pack('<H', h) for h in chains)


def write(name, data):
    path = os.path.join(HERE, 'seeds', name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


# fuzz_virtqueue: flag bits 2-5 give the device's maximum queue size (1 << n).
MAX256 = 8 << 2
write('fuzz_virtqueue/direct', image(8, 1 | MAX256, [None, None, (AVAIL + 2, 2), None], {
    DESC: desc(0x800, 16, NEXT, 1) + desc(0x900, 64, WRITE | NEXT, 2) + desc(0xa00, 8, WRITE),
    AVAIL: ring(8, [0, 0]),
}))
write('fuzz_virtqueue/indirect', image(8, MAX256, [None, None], {
    DESC: desc(0x600, 48, INDIRECT) + desc(0x900, 4, WRITE),
    AVAIL: ring(8, [0, 1]),
    0x600: desc(0x800, 16, NEXT, 1) + desc(0x900, 64, WRITE | NEXT, 2) + desc(0xa00, 1, WRITE),
}))

# fuzz_blk_request: flag bit 2 read-only, bit 3 INDIRECT_DESC.
def blk_header(type_, sector):
    return struct.pack('<IIQ', type_, 0, sector)


IN, OUT, FLUSH, GET_ID = 0, 1, 4, 8
write('fuzz_blk_request/read_write', image(8, 1, [None, None], {
    DESC: desc(0x800, 16, NEXT, 1) + desc(0x1000, 1024, WRITE | NEXT, 2) + desc(0xb00, 1, WRITE)
    + desc(0x810, 16, NEXT, 4) + desc(0x1400, 512, NEXT, 5) + desc(0xb01, 1, WRITE),
    AVAIL: ring(8, [0, 3]),
    0x800: blk_header(IN, 2) + blk_header(OUT, 7),
}))
write('fuzz_blk_request/indirect_get_id_flush', image(8, 1 | 8, [None, None], {
    DESC: desc(0x600, 48, INDIRECT) + desc(0x810, 16, NEXT, 2) + desc(0xb01, 1, WRITE),
    AVAIL: ring(8, [0, 1]),
    0x600: desc(0x800, 16, NEXT, 1) + desc(0xc00, 20, WRITE | NEXT, 2) + desc(0xb00, 1, WRITE),
    0x800: blk_header(GET_ID, 0) + blk_header(FLUSH, 0),
}))
write('fuzz_blk_request/read_only_write', image(8, 4, [None], {
    DESC: desc(0x800, 16, NEXT, 1) + desc(0x1000, 512, NEXT, 2) + desc(0xb00, 1, WRITE),
    AVAIL: ring(8, [0]),
    0x800: blk_header(OUT, 1),
}))
