"""A seccomp filter for the code sandbox, as the classic BPF program bubblewrap loads.

Written by hand (no libseccomp needed): on x86-64 it fails with ``EPERM`` the system calls
a test program has no use for and a sandbox escape or a verdict forgery would want
(debugging other processes, namespaces and mounts, kernel keyrings, BPF, perf, io_uring,
userfaultfd, modules, clocks, System V IPC and POSIX message queues that would outlive a
program in a warm sandbox, terminal input injection), refuses ``clone`` with any namespace
flag and makes ``clone3`` look absent (``ENOSYS``, so the C library falls back to
``clone``, whose flags the filter can read). Other architectures get no filter
(``program()`` returns ``None``) and ``Sandbox.describe()`` says so.
"""

from __future__ import annotations

import platform
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
EPERM, ENOSYS = 1, 38

# x86-64 numbers of the refused system calls.
DENIED_X86_64: dict[str, int] = {
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
    "pidfd_getfd": 438, "unshare": 272, "setns": 308, "mount": 165, "umount2": 166,
    "pivot_root": 155, "chroot": 161, "mount_setattr": 442, "move_mount": 429, "open_tree": 428,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "keyctl": 250, "add_key": 248,
    "request_key": 249, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "kexec_load": 246,
    "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176,
    "open_by_handle_at": 304, "name_to_handle_at": 303, "swapon": 167, "swapoff": 168,
    "reboot": 169, "acct": 163, "quotactl": 179, "syslog": 103, "lookup_dcookie": 212,
    "iopl": 172, "ioperm": 173, "modify_ldt": 154, "settimeofday": 164, "clock_settime": 227,
    "clock_adjtime": 305, "adjtimex": 159, "shmget": 29, "msgget": 68, "semget": 64,
    "mq_open": 240, "personality": 135, "vhangup": 153, "uselib": 134, "fanotify_init": 300,
    "sethostname": 170, "setdomainname": 171,
}
CLONE = 56
CLONE3 = 435
IOCTL = 16
TIOCSTI = 0x5412
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME
CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 \
    | 0x20000000 | 0x40000000 | 0x00000080

_LD_ABS_W = 0x20
_JEQ, _JGE, _JSET = 0x15, 0x35, 0x45
_RET = 0x06
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
# Offsets in struct seccomp_data.
_NR, _ARCH, _ARG0, _ARG1 = 0, 4, 16, 24


def _ins(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def program() -> bytes | None:
    """The filter as bytes (``struct sock_filter[]``), or ``None`` off x86-64."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return None
    head = [_ins(_LD_ABS_W, 0, 0, _ARCH), _ins(_JEQ, 1, 0, AUDIT_ARCH_X86_64),
            _ins(_RET, 0, 0, RET_KILL_PROCESS), _ins(_LD_ABS_W, 0, 0, _NR)]
    checks = [(_JGE, X32_SYSCALL_BIT)] + [(_JEQ, nr) for nr in sorted(DENIED_X86_64.values())]
    tail = [
        # clone: refuse namespace flags (arg 0, low 32 bits)
        _ins(_JEQ, 0, 3, CLONE), _ins(_LD_ABS_W, 0, 0, _ARG0), _ins(_JSET, 7, 0, CLONE_NAMESPACE_FLAGS),
        _ins(_LD_ABS_W, 0, 0, _NR),
        # clone3: "not implemented"
        _ins(_JEQ, 0, 1, CLONE3), _ins(_RET, 0, 0, RET_ERRNO | ENOSYS),
        # ioctl(TIOCSTI)
        _ins(_JEQ, 0, 2, IOCTL), _ins(_LD_ABS_W, 0, 0, _ARG1), _ins(_JEQ, 1, 0, TIOCSTI),
        _ins(_RET, 0, 0, RET_ALLOW),
        _ins(_RET, 0, 0, RET_ERRNO | EPERM),
    ]
    deny_at = len(tail) - 1  # index of the EPERM return within tail
    body = []
    n = len(checks)
    for j, (op, k) in enumerate(checks):
        body.append(_ins(op, (n - j - 1) + deny_at, 0, k))
    return b"".join(head + body + tail)


__all__ = ["program", "DENIED_X86_64"]
