"""The seccomp policy and its classic BPF compiler, run through a small BPF interpreter."""

from __future__ import annotations

import errno
import struct

import pytest

from runtime import process, seccomp, spec, syscalls
from runtime.errors import PyrunError, UsageError
from runtime.seccomp import (
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    SECCOMP_RET_KILL_PROCESS,
    Instruction,
)
from runtime.spec import RunOptions, build_spec
from runtime.users import User

X86_64 = seccomp.AUDIT_ARCHES["SCMP_ARCH_X86_64"]
AARCH64 = seccomp.AUDIT_ARCHES["SCMP_ARCH_AARCH64"]
AUDIT_ARCH_I386 = 0x40000003
X86_NUMBERS = seccomp.SYSCALL_NUMBERS["SCMP_ARCH_X86_64"]

# Numbers of calls the policy leaves alone (syscall_64.tbl): read, sendfile, ptrace.
X86_READ = 0
X86_SENDFILE = 40
X86_PTRACE = 101

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
SIGCHLD = 17
# CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|
# CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID: the flags of a new thread.
THREAD_FLAGS = 0x003D0F00
AF_INET = 2

DEFAULT_CAPABILITIES = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_SETUID", "CAP_SETGID", "CAP_SYS_CHROOT"]


def run_filter(program: list[Instruction], nr: int, arch: int = X86_64, args: tuple[int, ...] = ()) -> int:
    """Run a classic BPF seccomp program on one call, as the kernel would; return its SECCOMP_RET_* value."""
    arguments = list(args) + [0] * (6 - len(args))
    data = struct.pack("<iIQ6Q", nr, arch, 0, *arguments)
    accumulator = 0
    pc = 0
    while True:
        insn = program[pc]
        pc += 1
        if insn.code == seccomp.BPF_LD | seccomp.BPF_W | seccomp.BPF_ABS:
            accumulator = struct.unpack_from("<I", data, insn.k)[0]
        elif insn.code == seccomp.BPF_ALU | seccomp.BPF_AND | seccomp.BPF_K:
            accumulator &= insn.k
        elif insn.code == seccomp.BPF_JMP | seccomp.BPF_JA:
            pc += insn.k
        elif insn.code == seccomp.BPF_JMP | seccomp.BPF_JEQ | seccomp.BPF_K:
            pc += insn.jt if accumulator == insn.k else insn.jf
        elif insn.code == seccomp.BPF_JMP | seccomp.BPF_JGE | seccomp.BPF_K:
            pc += insn.jt if accumulator >= insn.k else insn.jf
        elif insn.code == seccomp.BPF_RET | seccomp.BPF_K:
            return insn.k
        else:
            raise AssertionError(f"unexpected opcode {insn.code:#x} at {pc - 1}")


def errno_of(errno_value: int) -> int:
    return SECCOMP_RET_ERRNO | errno_value


def default_filter(capabilities=DEFAULT_CAPABILITIES) -> list[Instruction]:
    return seccomp.compile_filter(seccomp.default_policy(capabilities, machine="x86_64"))


# -- The compiler -------------------------------------------------------------------


SMALL_POLICY = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"],
    "syscalls": [
        {"names": ["mount", "umount2"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["keyctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
        {"names": ["reboot"], "action": "SCMP_ACT_KILL_PROCESS"},
    ],
}


def test_small_policy_instructions():
    program = seccomp.compile_filter({**SMALL_POLICY, "architectures": ["SCMP_ARCH_AARCH64"]})
    jeq = seccomp.BPF_JMP | seccomp.BPF_JEQ | seccomp.BPF_K
    ret = seccomp.BPF_RET | seccomp.BPF_K
    assert program == [
        seccomp.load_word(seccomp.SECCOMP_DATA_ARCH),
        Instruction(jeq, 0, 1, AARCH64),
        Instruction(seccomp.BPF_JMP | seccomp.BPF_JA, 0, 0, 1),
        Instruction(ret, 0, 0, SECCOMP_RET_KILL_PROCESS),
        seccomp.load_word(seccomp.SECCOMP_DATA_NR),
        Instruction(jeq, 0, 1, 39),  # umount2
        Instruction(ret, 0, 0, errno_of(errno.EPERM)),
        Instruction(jeq, 0, 1, 40),  # mount
        Instruction(ret, 0, 0, errno_of(errno.EPERM)),
        Instruction(jeq, 0, 1, 142),  # reboot
        Instruction(ret, 0, 0, SECCOMP_RET_KILL_PROCESS),
        Instruction(jeq, 0, 1, 219),  # keyctl
        Instruction(ret, 0, 0, errno_of(errno.ENOSYS)),
        Instruction(ret, 0, 0, SECCOMP_RET_ALLOW),
    ]


def test_small_policy_actions():
    program = seccomp.compile_filter(SMALL_POLICY)
    assert run_filter(program, X86_NUMBERS["mount"]) == errno_of(errno.EPERM)
    assert run_filter(program, X86_NUMBERS["keyctl"]) == errno_of(errno.ENOSYS)
    assert run_filter(program, X86_NUMBERS["reboot"]) == SECCOMP_RET_KILL_PROCESS
    assert run_filter(program, X86_READ) == SECCOMP_RET_ALLOW


def test_each_architecture_uses_own_numbers():
    program = seccomp.compile_filter(SMALL_POLICY)
    # 40 is mount on aarch64 and sendfile on x86_64.
    assert run_filter(program, 40, arch=AARCH64) == errno_of(errno.EPERM)
    assert run_filter(program, X86_SENDFILE, arch=X86_64) == SECCOMP_RET_ALLOW
    assert run_filter(program, X86_NUMBERS["mount"], arch=AARCH64) == SECCOMP_RET_ALLOW


def test_other_abi_is_killed():
    program = seccomp.compile_filter(SMALL_POLICY)
    assert run_filter(program, X86_READ, arch=AUDIT_ARCH_I386) == SECCOMP_RET_KILL_PROCESS


def test_x32_call_is_killed():
    program = seccomp.compile_filter(SMALL_POLICY)
    assert run_filter(program, seccomp.X32_SYSCALL_BIT | X86_READ) == SECCOMP_RET_KILL_PROCESS
    # aarch64 has no x32 ABI, so its section has no such check.
    assert run_filter(program, seccomp.X32_SYSCALL_BIT | X86_READ, arch=AARCH64) == SECCOMP_RET_ALLOW


def test_encode_is_sock_filter_layout():
    encoded = seccomp.encode([Instruction(0x15, 1, 2, 0xC000003E)])
    assert encoded == struct.pack("=HBBI", 0x15, 1, 2, 0xC000003E)
    assert len(encoded) == syscalls.SOCK_FILTER_SIZE


def test_masked_eq_checks_low_32_bits():
    policy = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["clone"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 0, "value": CLONE_NEWUSER, "valueTwo": CLONE_NEWUSER,
                                "op": "SCMP_CMP_MASKED_EQ"}]}],
    }
    program = seccomp.compile_filter(policy)
    clone = X86_NUMBERS["clone"]
    assert run_filter(program, clone, args=(CLONE_NEWUSER | SIGCHLD,)) == errno_of(errno.EPERM)
    assert run_filter(program, clone, args=(SIGCHLD,)) == SECCOMP_RET_ALLOW
    # The kernel reads only the low 32 bits of clone's flags, and so does the check.
    assert run_filter(program, clone, args=((1 << 40) | CLONE_NEWUSER,)) == errno_of(errno.EPERM)
    assert run_filter(program, clone, args=(0, CLONE_NEWUSER)) == SECCOMP_RET_ALLOW


def test_rules_of_one_call_tried_in_order():
    policy = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": AF_INET,
                                                                        "op": "SCMP_CMP_EQ"}]},
            {"names": ["socket"], "action": "SCMP_ACT_KILL_PROCESS", "args": [{"index": 1, "value": 3,
                                                                                "op": "SCMP_CMP_EQ"}]},
        ],
    }
    program = seccomp.compile_filter(policy)
    socket = X86_NUMBERS["socket"]
    assert run_filter(program, socket, args=(AF_INET, 3)) == SECCOMP_RET_ALLOW
    assert run_filter(program, socket, args=(1, 3)) == SECCOMP_RET_KILL_PROCESS
    assert run_filter(program, socket, args=(1, 1)) == errno_of(errno.EPERM)
    assert run_filter(program, X86_READ) == errno_of(errno.EPERM)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"defaultAction": "SCMP_ACT_NOTIFY"}, "SCMP_ACT_NOTIFY"),
        ({"architectures": ["SCMP_ARCH_PPC64LE"]}, "SCMP_ARCH_PPC64LE"),
        ({"syscalls": [{"names": ["mountt"], "action": "SCMP_ACT_ERRNO"}]}, "mountt"),
        ({"syscalls": [{"names": ["clone"], "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_GT"}]}]}, "SCMP_CMP_GT"),
        ({"syscalls": [{"names": ["clone"], "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}, "index 6"),
        ({"syscalls": [{"names": ["clone"], "action": "SCMP_ACT_ERRNO",
                        "args": [{"index": 0, "value": 1 << 32, "op": "SCMP_CMP_EQ"}]}]}, "0x100000000"),
    ],
)
def test_unsupported_policy_is_error(change, message):
    with pytest.raises(PyrunError, match=message):
        seccomp.compile_filter({**SMALL_POLICY, **change})


def test_unknown_machine_is_error():
    with pytest.raises(PyrunError, match="riscv64"):
        seccomp.host_architecture("riscv64")


# -- Docker's default policy ---------------------------------------------------------


def test_default_policy_names_known_calls():
    for rule in seccomp.default_policy(DEFAULT_CAPABILITIES, machine="x86_64")["syscalls"]:
        for name in rule["names"]:
            assert name in X86_NUMBERS


def test_default_policy_is_deny_list():
    policy = seccomp.default_policy(DEFAULT_CAPABILITIES, machine="aarch64")
    assert policy["defaultAction"] == "SCMP_ACT_ALLOW"
    assert policy["architectures"] == ["SCMP_ARCH_AARCH64"]


@pytest.mark.parametrize("name", ["keyctl", "add_key", "request_key", "kexec_load", "bpf", "perf_event_open",
                                  "userfaultfd", "io_uring_setup", "open_by_handle_at", "fsopen", "mount",
                                  "umount2", "pivot_root", "reboot", "swapon", "unshare", "setns",
                                  "clock_settime", "init_module", "kcmp"])
def test_default_filter_denies(name):
    assert run_filter(default_filter(), X86_NUMBERS[name]) == errno_of(errno.EPERM)


def test_default_filter_allows_common_calls():
    program = default_filter()
    assert run_filter(program, X86_READ) == SECCOMP_RET_ALLOW
    assert run_filter(program, X86_PTRACE) == SECCOMP_RET_ALLOW
    assert run_filter(program, X86_NUMBERS["chroot"]) == SECCOMP_RET_ALLOW  # CAP_SYS_CHROOT is a default
    assert run_filter(program, X86_NUMBERS["socket"], args=(AF_INET,)) == SECCOMP_RET_ALLOW


def test_default_filter_denies_vsock():
    assert run_filter(default_filter(), X86_NUMBERS["socket"], args=(seccomp.AF_VSOCK,)) == errno_of(errno.EPERM)


def test_default_filter_clone_flags():
    program = default_filter()
    clone = X86_NUMBERS["clone"]
    assert run_filter(program, clone, args=(SIGCHLD,)) == SECCOMP_RET_ALLOW
    assert run_filter(program, clone, args=(THREAD_FLAGS,)) == SECCOMP_RET_ALLOW
    for flag in seccomp.NAMESPACE_CLONE_FLAGS.values():
        assert run_filter(program, clone, args=(flag | SIGCHLD,)) == errno_of(errno.EPERM)


def test_default_filter_clone3_is_enosys():
    assert run_filter(default_filter(), X86_NUMBERS["clone3"]) == errno_of(errno.ENOSYS)


def test_sys_admin_allows_namespaces_and_mounts():
    program = default_filter(DEFAULT_CAPABILITIES + ["CAP_SYS_ADMIN"])
    assert run_filter(program, X86_NUMBERS["clone"], args=(CLONE_NEWUSER | CLONE_NEWNET,)) == SECCOMP_RET_ALLOW
    for name in ["clone3", "unshare", "setns", "mount", "umount2", "fsopen", "bpf", "syslog"]:
        assert run_filter(program, X86_NUMBERS[name]) == SECCOMP_RET_ALLOW, name
    for name in ["pivot_root", "keyctl", "reboot"]:
        assert run_filter(program, X86_NUMBERS[name]) == errno_of(errno.EPERM), name


@pytest.mark.parametrize(
    "capability, names",
    [
        ("CAP_SYS_PTRACE", ["kcmp", "pidfd_getfd", "process_madvise"]),
        ("CAP_SYS_MODULE", ["init_module", "finit_module", "delete_module"]),
        ("CAP_SYS_BOOT", ["reboot"]),
        ("CAP_SYS_TIME", ["settimeofday", "clock_settime"]),
        ("CAP_SYS_RAWIO", ["iopl", "ioperm"]),
        ("CAP_SYSLOG", ["syslog"]),
        ("CAP_BPF", ["bpf"]),
    ],
)
def test_capability_allows_its_calls(capability, names):
    without = default_filter()
    with_capability = default_filter(DEFAULT_CAPABILITIES + [capability])
    for name in names:
        assert run_filter(without, X86_NUMBERS[name]) == errno_of(errno.EPERM), name
        assert run_filter(with_capability, X86_NUMBERS[name]) == SECCOMP_RET_ALLOW, name


def test_dropped_sys_chroot_denies_chroot():
    program = default_filter([cap for cap in DEFAULT_CAPABILITIES if cap != "CAP_SYS_CHROOT"])
    assert run_filter(program, X86_NUMBERS["chroot"]) == errno_of(errno.EPERM)


# -- The spec and --security-opt -----------------------------------------------------


def build(**options):
    return build_spec({"Cmd": ["sh"]}, RunOptions(**options), User(home="/root"), bundle="/store/containers/abc",
                      hostname="abc", user_mounts=[])


def test_spec_has_default_policy():
    policy = build()["linux"]["seccomp"]
    assert policy["defaultAction"] == "SCMP_ACT_ALLOW"
    denied = policy["syscalls"][0]
    assert denied["action"] == "SCMP_ACT_ERRNO"
    assert "unshare" in denied["names"]
    assert "keyctl" in denied["names"]


def test_spec_cap_add_changes_policy():
    policy = build(cap_add=["SYS_ADMIN"])["linux"]["seccomp"]
    denied = policy["syscalls"][0]["names"]
    assert "unshare" not in denied
    assert "keyctl" in denied
    assert all(rule["names"] != ["clone3"] for rule in policy["syscalls"])


def test_spec_privileged_has_no_policy():
    assert "seccomp" not in build(privileged=True)["linux"]


@pytest.mark.parametrize("option", ["seccomp=unconfined", "seccomp:unconfined"])
def test_spec_unconfined_has_no_policy(option):
    assert "seccomp" not in build(security_opt=[option])["linux"]


def test_security_opt_custom_profile_is_error():
    with pytest.raises(UsageError, match="seccomp=/etc/profile.json"):
        spec.security_options(["seccomp=/etc/profile.json"])


def test_security_opt_both_options():
    options = spec.security_options(["no-new-privileges", "seccomp=unconfined"])
    assert options.no_new_privileges is True
    assert options.seccomp_unconfined is True


# -- Where the process installs the filter --------------------------------------------

PROCESS = {"user": {"uid": 0, "gid": 0}, "cwd": "/", "capabilities": {"bounding": ["CAP_CHOWN"]}}


def test_finalize_installs_filter_first_without_no_new_privs():
    with syscalls.recording() as recorder:
        process.finalize(PROCESS, None, seccomp.compile_program(seccomp.default_policy(DEFAULT_CAPABILITIES,
                                                                                       machine="x86_64")))
    names = recorder.names()
    assert names[0] == "seccomp"
    assert names.count("seccomp") == 1
    assert recorder.calls[0].args["operation"] == "SECCOMP_SET_MODE_FILTER"


def test_finalize_installs_filter_last_with_no_new_privs():
    with syscalls.recording() as recorder:
        process.finalize({**PROCESS, "noNewPrivileges": True}, None,
                         seccomp.compile_program(seccomp.default_policy(DEFAULT_CAPABILITIES, machine="x86_64")))
    names = recorder.names()
    assert names[-1] == "seccomp"
    assert names.count("seccomp") == 1


def test_finalize_without_policy_installs_nothing():
    with syscalls.recording() as recorder:
        process.finalize(PROCESS, None, None)
    assert "seccomp" not in recorder.names()


def test_explain_step_matches_recorded_call():
    from runtime.teaching import steps

    with syscalls.recording() as recorder:
        syscalls.seccomp_set_mode_filter(seccomp.encode(default_filter()))
    call = recorder.calls[0]
    text = steps.explain(call.name, call.args)
    assert "seccomp filter" in text
    assert f"({len(default_filter())} BPF instructions)" in text
