"""The cgroup v2 device filter: an eBPF program built from the device rules.

cgroup v2 has no devices.allow file. Instead, a program of type
BPF_PROG_TYPE_CGROUP_DEVICE is attached to the cgroup, and the kernel runs
it each time a process in the cgroup opens a device node or creates one
with mknod(2) (cgroup-v2.rst, "Device controller"). The program reads the request from a
`struct bpf_cgroup_dev_ctx` (<linux/bpf.h>):

    offset 0  access_type   (access bits << 16) | device type
    offset 4  major
    offset 8  minor

and returns 1 to allow the request or 0 to deny it, which makes the call
fail with EPERM.

The program pyrun generates runs the rules of runtime.cgroups.devices from
first to last and keeps, in register r6, the access bits allowed so far.
A rule that matches the device sets its bits there (allow) or clears them
(deny), so the last matching rule decides for each bit. In the end the
request is allowed only when every bit it requests is set. For the rule
"c 1:3 rwm" the generated block reads:

    if r2 != 2 goto +3          type: not a character device, next rule
    if r4 != 1 goto +2          major: not 1, next rule
    if r5 != 3 goto +1          minor: not 3, next rule
    r6 |= 7                     allow m, r and w

Each instruction is made by a named helper below, which also renders it
as text in this notation. The kernel's "BPF Instruction Set Specification"
(Documentation/bpf/standardization/instruction-set.rst) describes the encoding.
"""

from __future__ import annotations

import errno
import os
import struct

from runtime import cdata, syscalls
from runtime.cgroups.detect import CgroupError
from runtime.cgroups.devices import DeviceRule
from runtime.log import get_logger
from runtime.records import record

log = get_logger(__name__)

# -- The encoding of one instruction ----------------------------------------------
# `struct bpf_insn` is 8 bytes: the opcode, one byte for the two registers,
# a signed 16-bit jump offset and a signed 32-bit immediate. On a
# little-endian machine, the only kind in syscalls.SYSCALL_NUMBERS, the
# destination register is the low 4 bits of its byte and the source the high 4.
INSTRUCTION_FORMAT = "<BBhi"

# Instruction classes, from <linux/bpf_common.h> and <linux/bpf.h>.
BPF_LDX = 0x01  # load from memory into a register
BPF_JMP = 0x05  # jumps and exit
BPF_ALU64 = 0x07  # arithmetic on 64-bit registers

# Fields that complete a load: the mode and the size.
BPF_MEM = 0x60
BPF_W = 0x00  # a 32-bit word

# Arithmetic operations and jump conditions.
BPF_OR = 0x40
BPF_AND = 0x50
BPF_RSH = 0x70
BPF_XOR = 0xA0
BPF_MOV = 0xB0
BPF_JSET = 0x40
BPF_JNE = 0x50
BPF_EXIT = 0x90

# The operand of an arithmetic operation or jump: the immediate or the source register.
BPF_K = 0x00
BPF_X = 0x08

# The registers the program uses. r1 contains the address of the context
# when the program starts, and r0 contains the verdict when it exits.
R0, R1, R2, R3, R4, R5, R6 = range(7)

# Offsets of the fields of `struct bpf_cgroup_dev_ctx`.
CTX_ACCESS_TYPE = 0
CTX_MAJOR = 4
CTX_MINOR = 8

# BPF_DEVCG_DEV_* and BPF_DEVCG_ACC_* from <linux/bpf.h>.
DEVICE_TYPE_BITS = {"b": 1 << 0, "c": 1 << 1}
ACCESS_BITS = {"m": 1 << 0, "r": 1 << 1, "w": 1 << 2}

# The program's verdicts.
DENY = 0
ALLOW = 1

# The kernel shows this name in `bpftool prog list`; at most 15 characters.
PROGRAM_NAME = "pyrun_devices"
# The kernel requires a license string and uses it to decide whether the
# program may call GPL-only helper functions. The program calls no helper,
# so pyrun's own license serves.
PROGRAM_LICENSE = "Apache-2.0"

# Room for the verifier's explanation when it rejects a program.
VERIFIER_LOG_SIZE = 64 * 1024


@record(frozen=True)
class Instruction:
    """One eBPF instruction, with its text in the kernel's notation."""

    code: int
    dst: int = 0
    src: int = 0
    offset: int = 0
    imm: int = 0
    text: str = ""

    def encode(self) -> bytes:
        return struct.pack(INSTRUCTION_FORMAT, self.code, self.src << 4 | self.dst, self.offset, self.imm)


# -- One helper per instruction ----------------------------------------------------


def load_word(dst: int, src: int, offset: int) -> Instruction:
    """Read the 32-bit word at src + offset, here a field of the context, into dst."""
    return Instruction(BPF_LDX | BPF_MEM | BPF_W, dst, src, offset, 0, f"r{dst} = *(u32 *)(r{src} + {offset})")


def move(dst: int, imm: int) -> Instruction:
    """Set dst to imm."""
    return Instruction(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm, f"r{dst} = {imm}")


def and_value(dst: int, imm: int) -> Instruction:
    """Keep only the bits of dst that imm has set.

    The immediate is sign-extended to 64 bits, so ~7 keeps every bit but the lowest 3.
    """
    text = f"r{dst} &= ~{~imm}" if imm < 0 else f"r{dst} &= {imm:#x}"
    return Instruction(BPF_ALU64 | BPF_AND | BPF_K, dst, 0, 0, imm, text)


def or_value(dst: int, imm: int) -> Instruction:
    """Set the bits of imm in dst."""
    return Instruction(BPF_ALU64 | BPF_OR | BPF_K, dst, 0, 0, imm, f"r{dst} |= {imm}")


def xor_value(dst: int, imm: int) -> Instruction:
    """Flip the bits of dst that imm has set; -1 flips every bit."""
    return Instruction(BPF_ALU64 | BPF_XOR | BPF_K, dst, 0, 0, imm, f"r{dst} ^= {imm}")


def shift_right(dst: int, imm: int) -> Instruction:
    """Shift dst right by imm bits, filling with zeros."""
    return Instruction(BPF_ALU64 | BPF_RSH | BPF_K, dst, 0, 0, imm, f"r{dst} >>= {imm}")


def jump_if_not_equal(dst: int, imm: int, skip: int) -> Instruction:
    """Skip the next `skip` instructions when dst != imm."""
    return Instruction(BPF_JMP | BPF_JNE | BPF_K, dst, 0, skip, imm, f"if r{dst} != {imm} goto +{skip}")


def jump_if_any_bit_set(dst: int, src: int, skip: int) -> Instruction:
    """Skip the next `skip` instructions when dst & src != 0."""
    return Instruction(BPF_JMP | BPF_JSET | BPF_X, dst, src, skip, 0, f"if r{dst} & r{src} goto +{skip}")


def exit_program() -> Instruction:
    """Return r0 to the kernel."""
    return Instruction(BPF_JMP | BPF_EXIT, text="exit")


# -- The program -------------------------------------------------------------------


def device_program(rules: list[DeviceRule]) -> list[Instruction]:
    """Build the program that applies `rules` in order, denying what no rule allows."""
    # Unpack the request into registers: r2 the device type, r3 the requested
    # access bits, r4 the major and r5 the minor number.
    program = [
        load_word(R2, R1, CTX_ACCESS_TYPE),
        and_value(R2, 0xFFFF),
        load_word(R3, R1, CTX_ACCESS_TYPE),
        shift_right(R3, 16),
        load_word(R4, R1, CTX_MAJOR),
        load_word(R5, R1, CTX_MINOR),
    ]

    # Start with no access allowed.
    program.append(move(R6, 0))

    # One block per rule, in the order of the list.
    for rule in rules:
        program.extend(rule_block(rule))

    # Allow only when every requested bit was allowed: flip r6 into the bits
    # not allowed, and deny when r3 requests any of them.
    program.extend([
        xor_value(R6, -1),
        move(R0, DENY),
        jump_if_any_bit_set(R3, R6, skip=1),
        move(R0, ALLOW),
        exit_program(),
    ])
    return program


def rule_block(rule: DeviceRule) -> list[Instruction]:
    """Build the instructions of one rule: the checks of the device, then the change to r6."""
    checks = []
    if rule.type != "a":
        checks.append((R2, DEVICE_TYPE_BITS[rule.type]))
    if rule.major is not None:
        checks.append((R4, rule.major))
    if rule.minor is not None:
        checks.append((R5, rule.minor))

    bits = sum(ACCESS_BITS[letter] for letter in rule.access)
    change = or_value(R6, bits) if rule.allow else and_value(R6, ~bits)

    # A check that fails jumps over the checks after it and the change.
    block = []
    for index, (register, value) in enumerate(checks):
        block.append(jump_if_not_equal(register, value, skip=len(checks) - index))
    block.append(change)
    return block


def encode(program: list[Instruction]) -> bytes:
    """Return the program as the bytes that BPF_PROG_LOAD reads."""
    return b"".join(instruction.encode() for instruction in program)


def render(program: list[Instruction]) -> str:
    """Return the program as text, one numbered instruction per line."""
    return "\n".join(f"{index:3}: {instruction.text}" for index, instruction in enumerate(program))


# -- Loading and attaching -------------------------------------------------------------


def attach_device_program(directory: str, rules: list[DeviceRule]) -> None:
    """Load the device program for `rules` and attach it to the cgroup at `directory`.

    The program is attached with BPF_F_ALLOW_MULTI, so the programs of
    parent cgroups keep running too, and a device is usable only when all
    of them allow it.

    NOTE: each call attaches one more program and leaves the earlier ones in
    place, so a second call can only narrow what the first allowed. Replacing
    a program would need BPF_PROG_QUERY and BPF_F_REPLACE.
    """
    program = device_program(rules)
    log.debug("device program for %s:\n%s", directory, render(program))
    program_fd = load_program(encode(program), directory)
    try:
        attach_program(program_fd, directory)
    finally:
        # syscalls.recording() returns no file descriptor, and the kernel
        # keeps an attached program after its descriptor is closed.
        if program_fd is not None:
            os.close(program_fd)
    log.debug("attached a device program of %d instructions to cgroup %s", len(program), directory)


def load_program(code: bytes, directory: str) -> int:
    """Load the program; when the verifier rejects it, load again to read why."""
    try:
        return syscalls.bpf_prog_load(syscalls.BPF_PROG_TYPE_CGROUP_DEVICE, code,
                                      license=PROGRAM_LICENSE, name=PROGRAM_NAME)
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EINVAL):
            hint = "loading eBPF programs needs root (CAP_SYS_ADMIN or CAP_BPF)" if err.errno == errno.EPERM else ""
            raise CgroupError(f"load the device program for cgroup {directory}", hint=hint) from err
        first_error = err

    # The log buffer is passed only on failure, because a log that does not
    # fit the buffer fails the load with ENOSPC, even of a valid program.
    log_buffer = cdata.string_buffer(VERIFIER_LOG_SIZE)
    try:
        syscalls.bpf_prog_load(syscalls.BPF_PROG_TYPE_CGROUP_DEVICE, code,
                               license=PROGRAM_LICENSE, name=PROGRAM_NAME, log=log_buffer)
    except OSError:
        pass
    verifier_log = log_buffer.value.decode(errors="replace").strip()
    raise CgroupError(f"load the device program for cgroup {directory}",
                      hint=f"the verifier said: {verifier_log}" if verifier_log else "") from first_error


def attach_program(program_fd: int, directory: str) -> None:
    """Attach a loaded program to the cgroup at `directory` as its device filter."""
    try:
        cgroup_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as err:
        raise CgroupError(f"open cgroup {directory} to attach its device program") from err
    try:
        syscalls.bpf_prog_attach(cgroup_fd, program_fd, syscalls.BPF_CGROUP_DEVICE,
                                 syscalls.BPF_F_ALLOW_MULTI, path=directory)
    except OSError as err:
        hint = ""
        if err.errno == errno.EPERM:
            hint = ("a parent cgroup has a device program attached without BPF_F_ALLOW_MULTI, "
                    "which forbids programs below it")
        raise CgroupError(f"attach the device program to cgroup {directory}", hint=hint) from err
    finally:
        os.close(cgroup_fd)
