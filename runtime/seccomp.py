"""Seccomp: a filter the kernel runs on every system call the container makes.

A seccomp filter is a classic BPF program (the packet filter language of
tcpdump) that the kernel runs before each system call of the process and
its children. It reads a `struct seccomp_data` (the call's number, the
architecture and the six arguments) and returns an action: allow the call,
fail it with an errno, or kill the process (seccomp(2)). The filter survives
execve(2) and can never be removed, only narrowed by more filters.

This module has two parts:

1. `default_policy` writes Docker's default profile as an OCI runtime-spec
   `linux.seccomp` object (config-linux.md), so `runc run` of the bundle
   applies the same policy through libseccomp;
2. `compile_filter` turns such an object into classic BPF instructions for
   seccomp(2) SECCOMP_SET_MODE_FILTER, which `runtime.process` installs.

The policy is a deny list: every call is allowed except those listed,
which fail with EPERM. Docker's profile (moby profiles/seccomp/default.json)
is an allow list of about 350 calls that denies the rest. A deny list of
about 60 calls fits in this file with both architectures' numbers, and each
entry names a call that a reader can look up. How it differs from Docker's:

- a system call added by a newer kernel is allowed until it is listed
  here, where Docker's profile denies it;
- personality(2) takes any value. Docker allows only five, and a deny list
  cannot express "every value except these" because libseccomp (and so
  runc) accepts one comparison per argument in a rule;
- the io_uring calls are denied, as in Docker's profile since late 2023;
  older Docker profiles allow them;
- calls from another ABI of the same CPU (32-bit i386 or x32 programs on
  x86_64, 32-bit arm programs on aarch64) kill the process. Docker's
  profile allows them through the same list, which would need each ABI's
  own syscall numbers here.

Like Docker's, the rules depend on the container's capabilities: with
CAP_SYS_ADMIN the mount and namespace calls are allowed, with CAP_SYS_PTRACE
kcmp and pidfd_getfd, and so on (CAPABILITY_SYSCALLS). Without
CAP_SYS_ADMIN, clone(2) with a namespace flag fails with EPERM. clone3(2)
fails with ENOSYS, because its flags are in a struct in memory that a
filter cannot read. On ENOSYS glibc falls back to clone(2), whose flags
are in a register the filter checks.
"""

from __future__ import annotations

import errno
import os
import struct

from runtime.errors import PyrunError
from runtime.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# -- The policy ---------------------------------------------------------------

# Denied whatever the capabilities, as in Docker's profile: key management,
# kexec, swap, userfaultfd, io_uring, page migration, pivot_root, and
# obsolete calls (the module calls before init_module, uselib, ustat, sysfs,
# _sysctl, nfsservctl).
ALWAYS_DENIED = [
    "add_key", "keyctl", "request_key",
    "kexec_load", "kexec_file_load",
    "create_module", "get_kernel_syms", "query_module",
    "swapon", "swapoff",
    "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "migrate_pages", "move_pages",
    "pivot_root",
    "uselib", "ustat", "sysfs", "_sysctl", "nfsservctl",
]

# Denied unless the container has one of the capabilities that list the
# call (Docker's "includes": {"caps": [...]} rules). ptrace(2) and
# process_vm_readv/writev are allowed without CAP_SYS_PTRACE, as Docker
# allows them on kernels from 4.8, which check seccomp again after a tracer
# changes a call.
CAPABILITY_SYSCALLS = {
    "CAP_SYS_ADMIN": [
        "bpf", "clone", "clone3", "fanotify_init", "lookup_dcookie", "perf_event_open",
        "mount", "umount2", "mount_setattr", "move_mount", "open_tree",
        "fsconfig", "fsmount", "fsopen", "fspick",
        "quotactl", "quotactl_fd", "setdomainname", "sethostname",
        "setns", "unshare", "syslog",
    ],
    "CAP_SYS_BOOT": ["reboot"],
    "CAP_SYS_CHROOT": ["chroot"],
    "CAP_SYS_MODULE": ["init_module", "finit_module", "delete_module"],
    "CAP_SYS_PACCT": ["acct"],
    "CAP_SYS_PTRACE": ["kcmp", "pidfd_getfd", "process_madvise"],
    "CAP_SYS_RAWIO": ["iopl", "ioperm"],
    "CAP_SYS_TIME": ["settimeofday", "clock_settime"],
    "CAP_SYS_TTY_CONFIG": ["vhangup"],
    "CAP_SYS_NICE": ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"],
    "CAP_SYSLOG": ["syslog"],
    "CAP_BPF": ["bpf"],
    "CAP_PERFMON": ["perf_event_open"],
    "CAP_DAC_READ_SEARCH": ["open_by_handle_at"],
}

# clone(2) flags that create a namespace (<linux/sched.h>). Docker allows
# clone(2) only when (flags & their sum, 0x7E020000) == 0.
NAMESPACE_CLONE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}

# socket(2)'s domain for virtual machine sockets, which Docker's profile denies.
AF_VSOCK = 40

# The OCI names of the architectures pyrun has syscall numbers for, by
# os.uname().machine.
MACHINE_ARCHITECTURES = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}


def default_policy(capabilities: list[str], machine: str | None = None) -> dict[str, Any]:
    """Return Docker's default profile for a container with `capabilities`, as a `linux.seccomp` object."""
    allowed = set()
    for capability in capabilities:
        allowed.update(CAPABILITY_SYSCALLS.get(capability, []))
    denied = list(ALWAYS_DENIED)
    for names in CAPABILITY_SYSCALLS.values():
        denied += [name for name in names if name not in allowed and name not in denied]

    rules: list[dict[str, Any]] = []
    if "clone" in denied:
        # clone(2) itself starts every thread and fork, so only the namespace flags are denied.
        denied.remove("clone")
        denied.remove("clone3")
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS})
        for flag in NAMESPACE_CLONE_FLAGS.values():
            condition = {"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}
            rules.append({"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM,
                          "args": [condition]})
    rules.insert(0, {"names": sorted(denied), "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM})
    rules.append({"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM,
                  "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_EQ"}]})
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": [host_architecture(machine)],
        "syscalls": rules,
    }


def host_architecture(machine: str | None = None) -> str:
    """Return the OCI architecture name of this machine, e.g. SCMP_ARCH_X86_64."""
    machine = machine or os.uname().machine
    try:
        return MACHINE_ARCHITECTURES[machine]
    except KeyError:
        raise PyrunError(
            f"no seccomp syscall table for architecture {machine!r}",
            hint="run the container with --security-opt seccomp=unconfined",
        ) from None


# -- Syscall numbers ------------------------------------------------------------
# Only the calls the policy names. x86_64: the kernel's
# arch/x86/entry/syscalls/syscall_64.tbl (as <asm/unistd_64.h> of Linux
# 6.1 lists them); aarch64: include/uapi/asm-generic/unistd.h, which arm64
# uses. From io_uring_setup (425) on, both use the same numbers.

SYSCALL_NUMBERS = {
    "SCMP_ARCH_X86_64": {
        "socket": 41, "clone": 56, "uselib": 134, "ustat": 136, "sysfs": 139, "vhangup": 153,
        "pivot_root": 155, "_sysctl": 156, "chroot": 161, "acct": 163, "settimeofday": 164,
        "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169,
        "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173, "create_module": 174,
        "init_module": 175, "delete_module": 176, "get_kernel_syms": 177, "query_module": 178,
        "quotactl": 179, "nfsservctl": 180, "syslog": 103, "lookup_dcookie": 212, "clock_settime": 227,
        "mbind": 237, "set_mempolicy": 238, "get_mempolicy": 239, "kexec_load": 246, "add_key": 248,
        "request_key": 249, "keyctl": 250, "migrate_pages": 256, "unshare": 272, "move_pages": 279,
        "perf_event_open": 298, "fanotify_init": 300, "open_by_handle_at": 304, "setns": 308,
        "kcmp": 312, "finit_module": 313, "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "clone3": 435, "pidfd_getfd": 438, "process_madvise": 440, "mount_setattr": 442,
        "quotactl_fd": 443, "set_mempolicy_home_node": 450,
    },
    "SCMP_ARCH_AARCH64": {
        "lookup_dcookie": 18, "umount2": 39, "mount": 40, "pivot_root": 41, "nfsservctl": 42,
        "chroot": 51, "vhangup": 58, "quotactl": 60, "acct": 89, "unshare": 97, "kexec_load": 104,
        "init_module": 105, "delete_module": 106, "clock_settime": 112, "syslog": 116, "reboot": 142,
        "sethostname": 161, "setdomainname": 162, "settimeofday": 170, "socket": 198, "add_key": 217,
        "request_key": 218, "keyctl": 219, "clone": 220, "swapon": 224, "swapoff": 225, "mbind": 235,
        "get_mempolicy": 236, "set_mempolicy": 237, "migrate_pages": 238, "move_pages": 239,
        "perf_event_open": 241, "fanotify_init": 262, "open_by_handle_at": 265, "setns": 268,
        "kcmp": 272, "finit_module": 273, "bpf": 280, "userfaultfd": 282, "kexec_file_load": 294,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "clone3": 435, "pidfd_getfd": 438, "process_madvise": 440, "mount_setattr": 442,
        "quotactl_fd": 443, "set_mempolicy_home_node": 450,
    },
}

# The AUDIT_ARCH_* value the kernel puts in seccomp_data.arch (<linux/audit.h>).
AUDIT_ARCHES = {"SCMP_ARCH_X86_64": 0xC000003E, "SCMP_ARCH_AARCH64": 0xC00000B7}

# x32 programs run on x86_64 with this bit set in the call number
# (__X32_SYSCALL_BIT in <asm/unistd.h>) and the x86_64 AUDIT_ARCH value.
X32_SYSCALL_BIT = 0x40000000


# -- Classic BPF ----------------------------------------------------------------
# Instruction classes, sizes, modes and operations (<linux/bpf_common.h>).

BPF_LD = 0x00
BPF_ALU = 0x04
BPF_JMP = 0x05
BPF_RET = 0x06
BPF_W = 0x00
BPF_ABS = 0x20
BPF_K = 0x00
BPF_AND = 0x50
BPF_JA = 0x00
BPF_JEQ = 0x10
BPF_JGE = 0x30

# The kernel runs at most this many instructions in one program (BPF_MAXINSNS).
BPF_MAXINSNS = 4096

# A conditional jump's offsets (`jt`, `jf`) are 8 bits; BPF_JA takes 32.
MAX_CONDITIONAL_JUMP = 255

# Offsets in struct seccomp_data (<linux/seccomp.h>):
#     int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6];
# The kernel fills it in the CPU's byte order; x86_64 and aarch64 are
# little-endian, so an argument's low 32 bits come first.
SECCOMP_DATA_NR = 0
SECCOMP_DATA_ARCH = 4
SECCOMP_DATA_ARGS = 16
ARGUMENT_SIZE = 8

# Return values of a filter (<linux/seccomp.h>). SECCOMP_RET_ERRNO carries
# the errno in its low 16 bits.
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_KILL_THREAD = 0x00000000
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_LOG = 0x7FFC0000
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_DATA = 0x0000FFFF

# The OCI actions pyrun compiles. SCMP_ACT_TRACE and SCMP_ACT_NOTIFY need a
# tracer or a supervisor listening, which pyrun does not have.
ACTIONS = {
    "SCMP_ACT_KILL": SECCOMP_RET_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": SECCOMP_RET_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": SECCOMP_RET_KILL_PROCESS,
    "SCMP_ACT_TRAP": SECCOMP_RET_TRAP,
    "SCMP_ACT_ERRNO": SECCOMP_RET_ERRNO,
    "SCMP_ACT_LOG": SECCOMP_RET_LOG,
    "SCMP_ACT_ALLOW": SECCOMP_RET_ALLOW,
}


@record(frozen=True)
class Instruction:
    """One `struct sock_filter`: the opcode, the jump offsets if true and if false, the constant k."""

    code: int
    jt: int
    jf: int
    k: int


def bpf_stmt(code: int, k: int) -> Instruction:
    """Build an instruction that does not branch, like the BPF_STMT macro of <linux/filter.h>."""
    return Instruction(code, 0, 0, k)


def bpf_jump(code: int, k: int, jt: int, jf: int) -> Instruction:
    """Build a conditional jump, like BPF_JUMP: skip `jt` instructions if true, `jf` if false."""
    if not (0 <= jt <= MAX_CONDITIONAL_JUMP and 0 <= jf <= MAX_CONDITIONAL_JUMP):
        raise PyrunError(f"seccomp filter jump of {max(jt, jf)} instructions is too long for classic BPF")
    return Instruction(code, jt, jf, k)


def load_word(offset: int) -> Instruction:
    """Load the 32-bit word at `offset` in struct seccomp_data into the accumulator."""
    return bpf_stmt(BPF_LD | BPF_W | BPF_ABS, offset)


def return_value(value: int) -> Instruction:
    """End the filter with `value` (a SECCOMP_RET_* action)."""
    return bpf_stmt(BPF_RET | BPF_K, value)


def compile_program(policy: dict[str, Any]) -> bytes:
    """Compile a `linux.seccomp` object into the bytes seccomp(2) loads."""
    return encode(compile_filter(policy))


def encode(program: list[Instruction]) -> bytes:
    """Pack the instructions as the kernel reads them: u16 code, u8 jt, u8 jf, u32 k, in native byte order."""
    return b"".join(struct.pack("=HBBI", insn.code, insn.jt, insn.jf, insn.k) for insn in program)


# -- The compiler -----------------------------------------------------------------


def compile_filter(policy: dict[str, Any]) -> list[Instruction]:
    """Compile a `linux.seccomp` object into a classic BPF program.

    The program has a dispatch on seccomp_data.arch, then one section per
    architecture: load the call's number, compare it with each number that
    has rules, and return the rule's action or the default action. Within a
    call's rules, the first whose argument conditions all hold decides.
    """
    default = action_value(policy.get("defaultAction", ""), policy.get("defaultErrnoRet"))
    architectures = policy.get("architectures") or [host_architecture()]
    for architecture in architectures:
        if architecture not in SYSCALL_NUMBERS:
            raise PyrunError(f"seccomp architecture {architecture!r} is not supported",
                             hint=f"pyrun compiles filters for {', '.join(SYSCALL_NUMBERS)}")
    rules = policy.get("syscalls") or []
    check_names(rules)
    sections = [architecture_section(architecture, rules, default) for architecture in architectures]
    program = architecture_dispatch(architectures, sections)
    if len(program) > BPF_MAXINSNS:
        raise PyrunError(f"seccomp filter has {len(program)} instructions; the kernel accepts {BPF_MAXINSNS}")
    return program


def action_value(action: str, errno_ret: int | None = None) -> int:
    """Return the SECCOMP_RET_* value of an OCI action; SCMP_ACT_ERRNO fails with `errno_ret`, by default EPERM."""
    if action not in ACTIONS:
        raise PyrunError(f"seccomp action {action!r} is not supported",
                         hint=f"use one of {', '.join(ACTIONS)}")
    if action == "SCMP_ACT_ERRNO":
        code = errno.EPERM if errno_ret is None else errno_ret
        return SECCOMP_RET_ERRNO | (code & SECCOMP_RET_DATA)
    return ACTIONS[action]


def check_names(rules: list[dict[str, Any]]) -> None:
    """Raise PyrunError for a call name that no architecture's table has (a typo would deny nothing)."""
    known = set()
    for numbers in SYSCALL_NUMBERS.values():
        known.update(numbers)
    for rule in rules:
        for name in rule.get("names") or []:
            if name not in known:
                raise PyrunError(f"seccomp rule names an unknown system call {name!r}",
                                 hint="add its numbers to SYSCALL_NUMBERS in runtime/seccomp.py")


def architecture_dispatch(architectures: list[str], sections: list[list[Instruction]]) -> list[Instruction]:
    """Jump to the section of the calling ABI; kill a process that calls through any other.

        ld  [arch]
        jeq #AUDIT_ARCH_X86_64, 0, 1     (one pair per architecture)
        ja  <its section>
        ret #SECCOMP_RET_KILL_PROCESS
    """
    program = [load_word(SECCOMP_DATA_ARCH)]
    section_start = 1 + 2 * len(architectures) + 1
    for architecture, section in zip(architectures, sections):
        program.append(bpf_jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCHES[architecture], 0, 1))
        # A jump's offset counts from the instruction after it.
        program.append(bpf_stmt(BPF_JMP | BPF_JA, section_start - (len(program) + 1)))
        section_start += len(section)
    program.append(return_value(SECCOMP_RET_KILL_PROCESS))
    for section in sections:
        program += section
    return program


def architecture_section(architecture: str, rules: list[dict[str, Any]], default: int) -> list[Instruction]:
    """Compile the rules with one architecture's numbers; a name the architecture lacks is skipped."""
    numbers = SYSCALL_NUMBERS[architecture]
    rules_by_number: dict[int, list[dict[str, Any]]] = {}
    for rule in rules:
        for name in rule.get("names") or []:
            if name in numbers:
                rules_by_number.setdefault(numbers[name], []).append(rule)

    section = [load_word(SECCOMP_DATA_NR)]
    if architecture == "SCMP_ARCH_X86_64":
        section += reject_x32_calls()
    for number in sorted(rules_by_number):
        block = syscall_block(rules_by_number[number], default)
        # Not this call: skip its block and compare the next number.
        section.append(bpf_jump(BPF_JMP | BPF_JEQ | BPF_K, number, 0, len(block)))
        section += block
    section.append(return_value(default))
    return section


def reject_x32_calls() -> list[Instruction]:
    """Kill an x32 program: its calls come with the x86_64 arch value and X32_SYSCALL_BIT set.

    Without this, an x32 call's number would miss every rule, and the call
    would be allowed.
    """
    return [
        bpf_jump(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 1),
        return_value(SECCOMP_RET_KILL_PROCESS),
    ]


def syscall_block(rules: list[dict[str, Any]], default: int) -> list[Instruction]:
    """Compile the rules of one call: each rule's checks, then its action, and the default action last."""
    block: list[Instruction] = []
    for rule in rules:
        action = return_value(action_value(rule.get("action", ""), rule.get("errnoRet")))
        conditions = rule.get("args") or []
        if not conditions:
            # A rule without conditions always holds, so later rules could never run.
            block.append(action)
            return block
        block += conditional_rule(conditions, action)
    block.append(return_value(default))
    return block


def conditional_rule(conditions: list[dict[str, Any]], action: Instruction) -> list[Instruction]:
    """Compile a rule's checks, each jumping past `action` when its condition fails, then `action`."""
    checks = [argument_check(condition) for condition in conditions]
    code: list[Instruction] = []
    remaining = sum(len(check) for check in checks) + 1
    for check in checks:
        remaining -= len(check)
        *steps, compare = check
        code += steps
        # On failure, skip the rest of the checks and the action.
        code.append(bpf_jump(compare.code, compare.k, 0, remaining))
    code.append(action)
    return code


def argument_check(condition: dict[str, Any]) -> list[Instruction]:
    """Compile one argument condition; its last instruction is the comparison.

    Only the argument's low 32 bits are compared, so values above 32 bits
    are rejected. Every argument the default policy checks is an int or a
    32-bit flag word that the kernel truncates (clone's flags, socket's
    domain), so nothing in the upper half can slip past a rule.
    NOTE: libseccomp compares both halves on 64-bit architectures, so under
    runc a call with garbage in the upper half misses the socket rule.
    """
    index = condition.get("index", -1)
    op = condition.get("op", "")
    value = condition.get("value", 0)
    value_two = condition.get("valueTwo", 0)
    if not 0 <= index <= 5:
        raise PyrunError(f"seccomp argument index {index!r} is invalid: a system call has arguments 0 to 5")
    if not (0 <= value < 2**32 and 0 <= value_two < 2**32):
        raise PyrunError(f"seccomp argument value {value:#x} does not fit in 32 bits; pyrun compares the low half only")
    low_word = load_word(SECCOMP_DATA_ARGS + ARGUMENT_SIZE * index)
    if op == "SCMP_CMP_EQ":
        return [low_word, bpf_jump(BPF_JMP | BPF_JEQ | BPF_K, value, 0, 0)]
    if op == "SCMP_CMP_MASKED_EQ":
        # OCI's MASKED_EQ: (argument & value) == valueTwo.
        return [low_word, bpf_stmt(BPF_ALU | BPF_AND | BPF_K, value), bpf_jump(BPF_JMP | BPF_JEQ | BPF_K, value_two, 0, 0)]
    raise PyrunError(f"seccomp comparison {op!r} is not supported", hint="use SCMP_CMP_EQ or SCMP_CMP_MASKED_EQ")
