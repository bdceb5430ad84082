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


# newc cpio archives, as guest/cpio.cpp writes them.
def newc(entries):
    out = b''
    for i, (path, mode, data) in enumerate(entries + [('TRAILER!!!', 0, b'')]):
        name = path.encode() + b'\0'
        out += b'070701' + b''.join(b'%08X' % v for v in (
            i + 1, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name), 0))
        out += name + b'\0' * (-(110 + len(name)) % 4)
        out += data + b'\0' * (-len(data) % 4)
    return out


REG, DIR = 0o100600, 0o40700
# fuzz_job_archive: the files stockade-init reads (guest/abi.hpp).
write('fuzz_job_archive/console', newc([
    ('stockade', DIR, b''), ('stockade/argv', REG, b'sh\0-c\0echo hi\0'),
    ('stockade/env', REG, b'A=1\0'), ('stockade/workdir', REG, b'/'),
    ('stockade/hostname', REG, b'sandbox')]))
write('fuzz_job_archive/everything', newc([
    ('stockade', DIR, b''), ('stockade/argv', REG, b'true\0'), ('stockade/env', REG, b''),
    ('stockade/workdir', REG, b'/w'), ('stockade/hostname', REG, b'h'),
    ('stockade/root', REG, b'/dev/vda ro'),
    ('stockade/net', REG, b'02:11:22:33:44:55 169.254.10.2/24'),
    ('stockade/vsock', REG, b'0000001027'), ('stockade/wait-start', REG, b'wait'),
    ('stockade/terminal', REG, b'pty')]))
write('fuzz_job_archive/oci-process', newc([
    ('stockade', DIR, b''), ('stockade/argv', REG, b'sh\0'), ('stockade/root', REG, b'/dev/vda rw'),
    ('stockade/process', REG, b'user\t1000\t1000\t27\nrlimit\t7\t1024\t1024\n'
     b'caps\ta80425fb\t400\t400\t0\t0\nno-new-privileges\nmounts\n'
     b'mount\tproc\tproc\t/proc\te\t\nmount\ttmpfs\ttmpfs\t/dev\t1000002\tmode=755\n'
     b'masked\t/proc/kcore\nreadonly\t/proc/sys\n')]))


# fuzz_control_message: messages as the runner sends them (guest/control.hpp), back to back.
def message(body):
    return struct.pack('<I', len(body)) + body


def blob(data):
    return struct.pack('<I', len(data)) + data


def exec_request(id_, argv, env, workdir, stdin_open, window=None):
    """window: (rows, columns) of a terminal of the exec's own (flags bit 2)."""
    items = [blob(b''.join(i + b'\0' for i in list_)) for list_ in (argv, env)]
    flags = stdin_open | (2 if window else 0)
    size = struct.pack('<HH', *window) if window else b''
    return message(b'X' + struct.pack('<IB', id_, flags) + b''.join(items) + blob(workdir) + size)


write('fuzz_control_message/session', message(b'W' + struct.pack('<HH', 33, 77)) + message(b'S') +
      message(b'K\x0f') + exec_request(
    1, [b'sh', b'-c', b'echo hi'], [b'A=1'], b'/', 0) + message(b'P'))
write('fuzz_control_message/exec', exec_request(
    0xffffffff, [b'cat', b''], [b'PATH=/bin', b'B=x=y'], b'/tmp/w d', 1))
# An exec on a terminal of its own (24 by 80), then a resize naming it.
write('fuzz_control_message/exec_tty', exec_request(
    5, [b'sh'], [b'TERM=xterm'], b'/', 1, (24, 80)) + message(b'W' + struct.pack('<IHH', 5, 50, 132)))
# A restored sandbox's notice: port, the clock (seconds as two halves, nanoseconds), entropy.
write('fuzz_control_message/restored', message(
    b'R' + struct.pack('<IIII', 1027, 1800000000, 0, 5) + bytes(range(32))))

# fuzz_boot_images: two bytes (where the kernel ends), the kernel, the initramfs.
def bzimage(version):
    setup = bytearray(2 * 512)
    setup[0x1f1] = 1                                  # setup_sects
    setup[0x1fe:0x200] = b'\x55\xaa'
    setup[0x202:0x206] = b'HdrS'
    setup[0x206:0x208] = struct.pack('<H', 0x20f)     # boot protocol 2.15
    setup[0x20e:0x210] = struct.pack('<H', 0x300 - 0x200)
    text = version.encode() + b'\0'
    setup[0x300:0x300 + len(text)] = text
    setup[0x211] = 1                                  # loadflags: LOADED_HIGH
    return bytes(setup) + b'\0' * 512


def boot_images(kernel, initrd):
    return struct.pack('>H', len(kernel)) + kernel + initrd


MODULES = [('lib', DIR, b''), ('lib/modules/6.1.0-1-amd64/kernel/virtio_pci.ko', REG, b'\x7fELF')]
write('fuzz_boot_images/matching', boot_images(
    bzimage('6.1.0-1-amd64 (debian) #1 SMP'), newc(MODULES)))
write('fuzz_boot_images/mismatched', boot_images(
    bzimage('6.1.0-2-amd64 (debian) #1 SMP'), newc(MODULES) + b'\0' * 8 + newc(MODULES)))


# fuzz_passthrough: a virtio-net-like function (PM, vendor, MSI-X in BAR 1, MSI), BAR 1 4 KiB
# and BAR 4 16 KiB 64-bit mappable, then a guest that enables decoding and MSI-X, programs a
# vector, moves BAR 4 and reads around the table.
def passthrough_config():
    c = bytearray(256)
    c[0:4] = struct.pack('<HH', 0x1af4, 0x1041)
    c[0x06:0x08] = struct.pack('<H', 0x10)             # capability list
    c[0x0b] = 2
    c[0x34] = 0x40
    c[0x40:0x42] = bytes([0x01, 0x50])                 # PM
    c[0x50:0x53] = bytes([0x09, 0x70, 16])             # vendor, 16 bytes
    c[0x70:0x72] = bytes([0x11, 0x84])                 # MSI-X: 3 vectors, table BAR 1 @ 0, PBA @ 0x800
    c[0x72:0x7c] = struct.pack('<HII', 2, 1, 0x801)
    c[0x84:0x86] = bytes([0x05, 0x00])                 # MSI
    return bytes(c)


def op(kind, target, size_exp, offset, value):
    return struct.pack('<BBBBHH', kind, target, size_exp, 0, offset, value)


bars = bytes([0, 0x10 | 4, 0, 0, 0x30 | 6, 0])  # 4 KiB, 16 KiB
write('fuzz_passthrough/virtio_net', passthrough_config() + bars + bytes([3]) + b''.join([
    op(0, 0x04, 1, 0, 0x0006),        # command: memory, bus master
    op(0, 0x42, 1, 0, 0x8000),        # MSI-X control (first capability at 0x40): enable
    op(2, 1, 2, 16, 0x0000), op(2, 1, 2, 18, 0xfee0), op(2, 1, 2, 28, 0),
    op(0, 0x20, 2, 0, 0x0000), op(0, 0x22, 1, 0, 0x1000),  # BAR 4 moved
    op(1, 1, 2, 0x800, 0), op(1, 4, 3, 0x100, 0), op(1, 0, 2, 0x10, 0),
    op(0, 0x04, 1, 0, 0x0000),
]))


# fuzz_api_request: requests as curl sends them, one split across two writes (0xff + a byte).
write('fuzz_api_request/get', b'GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n')
write('fuzz_api_request/pause_split',
      b'PATCH /vm HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Le'
      b'\xff\x00ngth: 19\r\n\r\n{"state": "Paused"}GET /metrics HTTP/1.1\r\n\r\n')
write('fuzz_api_request/actions', b'PUT /actions HTTP/1.1\r\nContent-Length: 31\r\nConnection: close\r\n\r\n{"action_type": "FlushMetrics"}')
exec_body = b'{"cmd": ["sh", "-c", "echo hi"], "env": ["A=1"], "workdir": "/", "stdin": true}'
write('fuzz_api_request/exec',
      b'PUT /exec HTTP/1.1\r\nContent-Length: %d\r\n\r\n' % len(exec_body) + exec_body)
tty_body = b'{"cmd": ["sh"], "stdin": true, "tty": {"rows": 24, "columns": 80}}'
resize_body = b'{"id": 5, "rows": 50, "columns": 132}'
write('fuzz_api_request/exec_tty',
      b'PUT /exec HTTP/1.1\r\nContent-Length: %d\r\n\r\n' % len(tty_body) + tty_body +
      b'PUT /exec/resize HTTP/1.1\r\nContent-Length: %d\r\n\r\n' % len(resize_body) + resize_body)
# fuzz_exec_frames: an exec's reply body as the sandbox sends it (runner/api/exec_stream.hpp).
def frame(kind, payload):
    return bytes([kind, 0, 0, 0]) + struct.pack('>I', len(payload)) + payload
write('fuzz_exec_frames/session', frame(1, b'hello\n') + frame(2, b'oops\n') + frame(1, b'') +
      frame(3, struct.pack('>I', 7)))
# What the fuzzer found first: invalid UTF-8 in the path reached a fault message's JSON.
write('fuzz_api_request/invalid_utf8_path', b'GET /\x9c\xff HTTP/1.1\r\nHost: x\r\n\r\n')


# fuzz_virtio_transport: a flag byte (bit 0: blk), then 8-byte accesses (op, width code,
# offset, value). A driver's whole start of virtio-rng (or blk), one chain, one kick.
def access(op, width, offset, value):
    return struct.pack('<BBHI', op, width, offset, value & 0xffffffff)


def transport_start(device_is_blk):
    common = 4  # bar_write into the common configuration
    a = [access(common, 0, 0x14, 0),            # reset
         access(common, 0, 0x14, 1),            # ACKNOWLEDGE
         access(common, 0, 0x14, 3),            # DRIVER
         access(common, 2, 0x08, 1),            # driver_feature_select = 1
         access(common, 2, 0x0c, 1),            # VIRTIO_F_VERSION_1
         access(common, 0, 0x14, 11),           # FEATURES_OK
         access(common, 1, 0x16, 0),            # queue_select 0
         access(common, 1, 0x18, 16),           # queue_size 16
         access(common, 2, 0x20, 0x1000), access(common, 2, 0x24, 0),
         access(common, 2, 0x28, 0x2000), access(common, 2, 0x2c, 0),
         access(common, 2, 0x30, 0x3000), access(common, 2, 0x34, 0),
         access(common, 1, 0x1c, 1),            # queue_enable
         access(common, 0, 0x14, 15)]           # DRIVER_OK
    ram = 5  # a 4-byte guest store
    if device_is_blk:
        # header (readable), data (writable), status (writable): a read of sector 0
        a += [access(ram, 2, 0x1000, 0x4000), access(ram, 2, 0x1008, 16),
              access(ram, 2, 0x100c, 1 | (1 << 16)),  # flags NEXT, next 1
              access(ram, 2, 0x1010, 0x5000), access(ram, 2, 0x1018, 512 | 0),
              access(ram, 2, 0x101c, 3 | (2 << 16)),
              access(ram, 2, 0x1020, 0x6000), access(ram, 2, 0x1028, 1),
              access(ram, 2, 0x102c, 2)]
    else:
        a += [access(ram, 2, 0x1000, 0x4000), access(ram, 2, 0x1008, 64),
              access(ram, 2, 0x100c, 2)]      # flags WRITE, next 0
    a += [access(ram, 2, 0x2000, 1 << 16),      # avail flags 0, idx 1
          access(ram, 2, 0x2004, 0),            # ring[0] = head 0
          access(6, 0, 0, 0),                   # the kick
          access(2, 2, 0x1000, 0)]              # ISR read
    return bytes([1 if device_is_blk else 0]) + b''.join(a)


write('fuzz_virtio_transport/rng-start', transport_start(False))
write('fuzz_virtio_transport/blk-start', transport_start(True))


def transport_net_start():
    """virtio-net: MRG_RXBUF and VERSION_1; rx queue 0 gets a 1526-byte buffer, tx queue 1
    sends a 74-byte frame; the host sends one frame; the tap's watch and the kicks fire."""
    common, ram = 4, 5
    a = [access(common, 0, 0x14, 0), access(common, 0, 0x14, 3),
         access(common, 2, 0x08, 0), access(common, 2, 0x0c, 1 << 15),  # MRG_RXBUF
         access(common, 2, 0x08, 1), access(common, 2, 0x0c, 1),        # VERSION_1
         access(common, 0, 0x14, 11)]
    for q, base in ((0, 0x1000), (1, 0x5000)):
        a += [access(common, 1, 0x16, q), access(common, 1, 0x18, 16),
              access(common, 2, 0x20, base), access(common, 2, 0x28, base + 0x1000),
              access(common, 2, 0x30, base + 0x2000), access(common, 1, 0x1c, 1)]
    a += [access(common, 0, 0x14, 15),
          # rx: one writable buffer at 0x9000
          access(ram, 2, 0x1000, 0x9000), access(ram, 2, 0x1008, 1526), access(ram, 2, 0x100c, 2),
          access(ram, 2, 0x2000, 1 << 16), access(ram, 2, 0x2004, 0),
          # tx: header and frame, readable, at 0xa000
          access(ram, 2, 0x5000, 0xa000), access(ram, 2, 0x5008, 74), access(ram, 2, 0x500c, 0),
          access(ram, 2, 0x6000, 1 << 16), access(ram, 2, 0x6004, 0),
          access(8, 0x45, 0, 98),               # the host sends a 98-byte frame
          access(6, 0, 0, 0), access(6, 0, 0, 1), access(6, 0, 0, 2)]
    return bytes([2]) + b''.join(a)


write('fuzz_virtio_transport/net-start', transport_net_start())


def transport_net_mq_start():
    """virtio-net with two queue pairs: MRG_RXBUF, CTRL_VQ, MQ and VERSION_1; queues 0 to 4
    (the control queue last) at 0x1000 + q * 0x1000; a VQ_PAIRS_SET 2 command with its ack,
    then a receive buffer on pair 1's queue; the host sends a frame into each tap queue."""
    common, ram = 4, 5
    a = [access(common, 0, 0x14, 0), access(common, 0, 0x14, 3),
         access(common, 2, 0x08, 0),
         access(common, 2, 0x0c, (1 << 15) | (1 << 17) | (1 << 22)),  # MRG_RXBUF CTRL_VQ MQ
         access(common, 2, 0x08, 1), access(common, 2, 0x0c, 1),        # VERSION_1
         access(common, 0, 0x14, 11)]
    for q in range(5):
        base = 0x1000 + q * 0x1000
        a += [access(common, 1, 0x16, q), access(common, 1, 0x18, 16),
              access(common, 2, 0x20, base), access(common, 2, 0x28, base + 0x400),
              access(common, 2, 0x30, base + 0x800), access(common, 1, 0x1c, 1)]
    a += [access(common, 0, 0x14, 15),
          # control: class MQ, VQ_PAIRS_SET, 2 pairs (readable), then the ack (writable)
          access(ram, 2, 0xb000, 4 | (0 << 8) | (2 << 16)),
          access(ram, 2, 0x5000, 0xb000), access(ram, 2, 0x5008, 4),
          access(ram, 2, 0x500c, 1 | (1 << 16)),           # NEXT, next 1
          access(ram, 2, 0x5010, 0xb100), access(ram, 2, 0x5018, 1), access(ram, 2, 0x501c, 2),
          access(ram, 2, 0x5400, 1 << 16), access(ram, 2, 0x5404, 0),
          # pair 1's receive queue (queue 2): one writable buffer
          access(ram, 2, 0x3000, 0x9000), access(ram, 2, 0x3008, 1526), access(ram, 2, 0x300c, 2),
          access(ram, 2, 0x3400, 1 << 16), access(ram, 2, 0x3404, 0),
          # the watched descriptors in order: pair 0's tap (while it has buffers) and the
          # five kicks; a kick of each, the control queue's among them
          access(6, 0, 0, 5), access(6, 0, 0, 3),
          access(8, 0x45, 0, 98), access(8, 0x45, 1, 98),  # a frame into each tap queue
          access(6, 0, 0, 0), access(6, 0, 0, 1), access(6, 0, 0, 2), access(6, 0, 0, 3),
          access(6, 0, 0, 4), access(6, 0, 0, 5), access(6, 0, 0, 6)]
    return bytes([3]) + b''.join(a)


write('fuzz_virtio_transport/net-mq-start', transport_net_mq_start())

# fuzz_specs: the first byte picks the parser; 4 is an OCI config.json (containerd's default
# spec, trimmed).
write('fuzz_specs/oci-config', bytes([4]) + b'''{"ociVersion":"1.0.2-dev","process":{"user":{"uid":0,\
"gid":0,"additionalGids":[5]},"args":["sh","-c","echo hi"],"env":["PATH=/bin"],"cwd":"/",\
"capabilities":{"bounding":["CAP_CHOWN","CAP_KILL"],"effective":["CAP_KILL"],\
"permitted":["CAP_KILL"]},"rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],\
"noNewPrivileges":true},"root":{"path":"rootfs","readonly":true},"hostname":"h",\
"mounts":[{"destination":"/proc","type":"proc","source":"proc","options":["nosuid","noexec"]},\
{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","mode=755"]},\
{"destination":"/etc/hosts","type":"bind","source":"/etc/hosts","options":["rbind","ro"]}],\
"linux":{"resources":{"devices":[{"allow":false,"access":"rwm"}],"memory":{"limit":134217728},\
"cpu":{"quota":50000,"period":100000}},"namespaces":[{"type":"pid"},{"type":"mount"}],\
"maskedPaths":["/proc/kcore"],"readonlyPaths":["/proc/sys"],\
"sysctl":{"net.ipv4.ping_group_range":"0 0"},"seccomp":{"defaultAction":"SCMP_ACT_ERRNO",\
"defaultErrnoRet":1,"architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],"syscalls":[\
{"names":["read","write","exit_group"],"action":"SCMP_ACT_ALLOW"},{"names":["personality"],\
"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}},\
"annotations":{"io.stockade.vcpus":"2"}}''')

# fuzz_memory_layout: the part's size in pages, then a layout of two regions covering it.
write('fuzz_memory_layout/two-regions', struct.pack('<Q', 48) + struct.pack('<II', 0x4c594d53, 2) +
      struct.pack('<QQQ', 0x7f0000000000, 16 * 4096, 0) +
      struct.pack('<QQQ', 0x7f4000000000, 32 * 4096, 16 * 4096))
