//! The port's XDP program, assembled here so that no compiler is needed at
//! run time. In C it would read:
//!
//! ```c
//! SEC("xdp") int xsk_redirect(struct xdp_md *ctx)
//! {
//!     return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
//! }
//! ```
//!
//! `bpf_redirect_map` sends the frame to the AF_XDP socket stored in the
//! XSKMAP `xsks` at the frame's receive queue; the low bits of its flags
//! (Linux 5.3+) are the action when the slot is empty, so frames of a queue
//! without a socket go on to the kernel's stack (XDP_PASS).

/// One eBPF instruction (`struct bpf_insn`, include/uapi/linux/bpf.h):
/// opcode, destination register in the low nibble and source register in
/// the high nibble of `regs`, signed offset, signed immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcode parts (include/uapi/linux/bpf_common.h and bpf.h).
const BPF_LD: u8 = 0x00;
const BPF_LDX: u8 = 0x01;
const BPF_JMP: u8 = 0x05;
const BPF_ALU64: u8 = 0x07;
const BPF_W: u8 = 0x00;
const BPF_DW: u8 = 0x18;
const BPF_IMM: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_MOV: u8 = 0xb0;
const BPF_CALL: u8 = 0x80;
const BPF_EXIT: u8 = 0x90;
/// `src_reg` of a 64-bit immediate load whose immediate is a map fd.
const BPF_PSEUDO_MAP_FD: u8 = 1;
/// Helper number of `bpf_redirect_map`.
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
/// `offsetof(struct xdp_md, rx_queue_index)`.
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;
/// XDP action codes (enum xdp_action).
pub const XDP_PASS: i32 = 2;

const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

/// `dst = *(u32 *)(src + off)`
const fn load_u32(dst: u8, src: u8, off: i16) -> Insn {
    insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0)
}

/// `dst = imm` (64-bit register)
const fn mov_imm(dst: u8, imm: i32) -> Insn {
    insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm)
}

/// `dst = map` (a 64-bit immediate load over two instructions, the map
/// given by its fd, which the verifier turns into the map's address).
const fn load_map_fd(dst: u8, fd: i32) -> [Insn; 2] {
    [
        insn(BPF_LD | BPF_DW | BPF_IMM, dst, BPF_PSEUDO_MAP_FD, 0, fd),
        insn(0, 0, 0, 0, 0),
    ]
}

const fn call(helper: i32) -> Insn {
    insn(BPF_JMP | BPF_CALL, 0, 0, 0, helper)
}

const fn exit() -> Insn {
    insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
}

/// The program, redirecting into the XSKMAP `map_fd`.
pub fn xsk_redirect(map_fd: i32) -> [Insn; 6] {
    let [map_lo, map_hi] = load_map_fd(R1, map_fd);
    [
        // r2 = ctx->rx_queue_index (r1 holds ctx on entry)
        load_u32(R2, R1, XDP_MD_RX_QUEUE_INDEX),
        // r1 = &xsks
        map_lo,
        map_hi,
        // r3 = XDP_PASS: the action when the queue has no socket
        mov_imm(R3, XDP_PASS),
        // r0 = bpf_redirect_map(r1, r2, r3)
        call(BPF_FUNC_REDIRECT_MAP),
        // return r0
        exit(),
    ]
}

/// The program's bytes as the kernel reads them (little-endian machine).
pub fn encode(insns: &[Insn]) -> Vec<u8> {
    insns
        .iter()
        .flat_map(|i| {
            let mut b = [0u8; 8];
            b[0] = i.code;
            b[1] = i.regs;
            b[2..4].copy_from_slice(&i.off.to_ne_bytes());
            b[4..8].copy_from_slice(&i.imm.to_ne_bytes());
            b
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruction_is_eight_bytes() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        assert_eq!(std::mem::align_of::<Insn>(), 4);
    }

    /// The bytes match what clang emits for the C program above
    /// (`llvm-objdump -d` of `bpf_redirect_map(&xsks, ctx->rx_queue_index,
    /// XDP_PASS)`), with the map fd 7 patched into the immediate load.
    #[test]
    #[cfg(target_endian = "little")]
    fn encoding_matches_the_compiler() {
        let expected: [[u8; 8]; 6] = [
            [0x61, 0x12, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00], // r2 = *(u32 *)(r1 + 16)
            [0x18, 0x11, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00], // r1 = map fd 7 ll
            [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
            [0xb7, 0x03, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00], // r3 = 2
            [0x85, 0x00, 0x00, 0x00, 0x33, 0x00, 0x00, 0x00], // call 51
            [0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // exit
        ];
        assert_eq!(encode(&xsk_redirect(7)), expected.concat());
    }

    #[test]
    fn registers_go_in_the_right_nibbles() {
        let i = load_u32(R2, R1, 16);
        assert_eq!((i.regs & 0x0f, i.regs >> 4), (2, 1));
        let m = load_map_fd(R1, -1)[0];
        assert_eq!((m.regs & 0x0f, m.regs >> 4, m.imm), (1, 1, -1));
    }
}
