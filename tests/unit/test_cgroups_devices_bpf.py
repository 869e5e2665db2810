"""The cgroup v2 device program, decoded from its bytes and run by a tiny interpreter.

The interpreter knows only the instructions the device program should use,
so an unexpected opcode fails the test. Each case checks a verdict, which
is what the kernel would do with the request, not the bytes themselves.
"""

import itertools
import struct

import pytest

from runtime.cgroups import bpf
from runtime.cgroups.devices import parse_rules
from runtime.spec import DEFAULT_DEVICE_RULES

MASK64 = (1 << 64) - 1
TYPE_BITS = {"b": 1, "c": 2}
ACCESS_BITS = {"m": 1, "r": 2, "w": 4}
# A loaded program may have at most 4096 instructions unless the loader has CAP_BPF.
MAX_INSTRUCTIONS = 4096


def run_program(code: bytes, kind: str, major: int, minor: int, access: str) -> int:
    """Run the encoded program on one request and return r0: 1 allows, 0 denies."""
    access_bits = sum(ACCESS_BITS[letter] for letter in access)
    context = struct.pack("<III", access_bits << 16 | TYPE_BITS[kind], major, minor)
    instructions = [struct.unpack("<BBhi", code[i:i + 8]) for i in range(0, len(code), 8)]
    registers: dict[int, int] = {1: 0}  # r1 points at the context, here at offset 0
    pc = 0
    while True:
        opcode, regs, offset, imm = instructions[pc]
        dst, src = regs & 0x0F, regs >> 4
        value = imm & MASK64  # the immediate, sign-extended to 64 bits
        pc += 1
        if opcode == 0x61:  # dst = *(u32 *)(src + offset)
            address = registers[src] + offset
            registers[dst] = struct.unpack_from("<I", context, address)[0]
        elif opcode == 0xB7:  # dst = imm
            registers[dst] = value
        elif opcode == 0x57:  # dst &= imm
            registers[dst] &= value
        elif opcode == 0x47:  # dst |= imm
            registers[dst] |= value
        elif opcode == 0xA7:  # dst ^= imm
            registers[dst] ^= value
        elif opcode == 0x77:  # dst >>= imm
            registers[dst] >>= imm
        elif opcode == 0x55:  # if dst != imm goto +offset
            assert offset > 0, "the verifier needs a forward jump here"
            if registers[dst] != value:
                pc += offset
        elif opcode == 0x4D:  # if dst & src goto +offset
            assert offset > 0, "the verifier needs a forward jump here"
            if registers[dst] & registers[src]:
                pc += offset
        elif opcode == 0x95:  # exit
            return registers[0]
        else:
            raise AssertionError(f"unexpected opcode {opcode:#x} at instruction {pc - 1}")


def verdict(rules: list[dict], kind: str, major: int, minor: int, access: str) -> str:
    code = bpf.encode(bpf.device_program(parse_rules(rules)))
    result = run_program(code, kind, major, minor, access)
    assert result in (0, 1), result
    return "allow" if result else "deny"


def reference_verdict(rules: list[dict], kind: str, major: int, minor: int, access: str) -> str:
    """The rules' meaning in plain Python: per access letter, the last matching rule decides."""
    allowed = set()
    for rule in parse_rules(rules):
        if rule.type not in ("a", kind):
            continue
        if rule.major not in (None, major) or rule.minor not in (None, minor):
            continue
        if rule.allow:
            allowed |= set(rule.access)
        else:
            allowed -= set(rule.access)
    return "allow" if set(access) <= allowed else "deny"


@pytest.mark.parametrize("kind, major, minor, access, expected", [
    ("c", 1, 3, "rw", "allow"),     # /dev/null
    ("c", 1, 3, "m", "allow"),
    ("c", 1, 5, "r", "allow"),      # /dev/zero
    ("c", 1, 9, "r", "allow"),      # /dev/urandom
    ("c", 5, 2, "rw", "allow"),     # /dev/ptmx
    ("c", 136, 7, "rw", "allow"),   # /dev/pts/7
    ("b", 8, 0, "r", "deny"),       # /dev/sda
    ("b", 8, 0, "m", "deny"),
    ("b", 1, 3, "r", "deny"),       # a block device with null's numbers
    ("c", 1, 1, "r", "deny"),       # /dev/mem
    ("c", 10, 200, "rw", "deny"),   # /dev/net/tun
    ("c", 4, 0, "w", "deny"),       # /dev/tty0
])
def test_default_rules(kind, major, minor, access, expected):
    assert verdict(DEFAULT_DEVICE_RULES, kind, major, minor, access) == expected


def test_privileged_allows_any_device():
    rules = [{"allow": True, "access": "rwm"}]
    assert verdict(rules, "b", 8, 0, "rwm") == "allow"
    assert verdict(rules, "c", 1, 1, "r") == "allow"


def test_no_rules_deny_everything():
    assert verdict([], "c", 1, 3, "r") == "deny"


def test_later_deny_wins():
    rules = [
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"},
    ]
    assert verdict(rules, "c", 1, 3, "r") == "allow"
    assert verdict(rules, "c", 1, 3, "w") == "deny"
    assert verdict(rules, "c", 1, 3, "rw") == "deny"


def test_later_allow_wins():
    rules = [
        {"allow": False, "access": "rwm"},
        {"allow": False, "type": "c", "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "access": "r"},
    ]
    assert verdict(rules, "c", 1, 9, "r") == "allow"
    assert verdict(rules, "c", 1, 9, "w") == "deny"
    assert verdict(rules, "b", 1, 9, "r") == "deny"


def test_access_letters_from_two_rules_combine():
    rules = [
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "w"},
    ]
    assert verdict(rules, "c", 1, 3, "rw") == "allow"
    assert verdict(rules, "c", 1, 3, "m") == "deny"


def test_type_a_with_major_matches_both_types():
    rules = [{"allow": True, "type": "a", "major": 7, "access": "rwm"}]
    assert verdict(rules, "b", 7, 0, "r") == "allow"
    assert verdict(rules, "c", 7, 1, "w") == "allow"
    assert verdict(rules, "c", 8, 0, "r") == "deny"


def test_mknod_any_but_open_few():
    rules = DEFAULT_DEVICE_RULES + [
        {"allow": True, "type": "c", "access": "m"},
        {"allow": True, "type": "b", "access": "m"},
    ]
    assert verdict(rules, "b", 8, 0, "m") == "allow"
    assert verdict(rules, "b", 8, 0, "r") == "deny"


RULE_SETS = [
    DEFAULT_DEVICE_RULES,
    [{"allow": True, "access": "rwm"}, {"allow": False, "type": "b", "major": 8, "access": "rw"}],
    [{"allow": True, "type": "c", "major": 1, "access": "rw"},
     {"allow": False, "type": "a", "minor": 3, "access": "w"},
     {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "m"}],
]
REQUESTS = list(itertools.product(
    ["b", "c"], [1, 5, 8, 136], [0, 2, 3, 9], ["m", "r", "w", "rw", "rwm"],
))


@pytest.mark.parametrize("rules", RULE_SETS, ids=["default", "blocklist", "mixed"])
def test_program_matches_reference(rules):
    mismatches = [
        request for request in REQUESTS
        if verdict(rules, *request) != reference_verdict(rules, *request)
    ]
    assert mismatches == []


def test_program_stays_small():
    program = bpf.device_program(parse_rules(DEFAULT_DEVICE_RULES))
    assert len(program) < MAX_INSTRUCTIONS
    assert len(bpf.encode(program)) == 8 * len(program)


def test_register_nibbles_follow_kernel_layout():
    # r2 = *(u32 *)(r1 + 4): opcode 0x61, dst r2 in the low nibble, src r1 in the high one.
    assert bpf.load_word(2, 1, 4).encode() == bytes.fromhex("6112040000000000")


def test_render_reads_like_kernel_notation():
    rule_text = bpf.render(bpf.rule_block(parse_rules([DEFAULT_DEVICE_RULES[2]])[0]))
    assert rule_text.splitlines() == [
        "  0: if r2 != 2 goto +3",
        "  1: if r4 != 1 goto +2",
        "  2: if r5 != 3 goto +1",
        "  3: r6 |= 7",
    ]
