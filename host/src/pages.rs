//! Big buffers on transparent huge pages, when asked for
//! (`WASMPAR_HUGE_PAGES=1`; off by default). A pushed or pulled 80 MB
//! array lands in fresh memory every time (glibc maps anything that large
//! anew and unmaps it when freed), so its first write takes a page fault
//! per 4 KiB: ~20 000 faults, a third of the server's time for an 80 MB
//! push in a profile. Advising the kernel to back such a buffer with 2 MiB
//! pages (where it is configured `madvise`, as Debian's default is) makes
//! that 40 faults.
//!
//! Why off by default: on the VM this was measured on, huge pages came
//! from guest memory the hypervisor had not backed yet, and zeroing them
//! cost far more than the faults saved: raw 80 MB pushes from the Python
//! client took 100–245 ms with the advice against 50–64 ms without, on
//! fresh servers (4K pages reuse memory freed a moment before). The JSON
//! push bench row was 3.25 GB/s with it and 2.7–2.9 GB/s without.
//!
//! Invariants:
//! - Advice only: it changes neither the contents nor the length of a
//!   buffer, and a kernel that refuses it (or another OS) changes nothing
//!   but the speed.
//! - Only whole 4 KiB pages inside the buffer are advised, never memory
//!   around it.

/// Buffers smaller than this are left alone (one huge page).
pub const HUGE_FROM: usize = 2 << 20;

/// Advise huge pages for the memory of `buf` (do it before first writing).
pub fn advise_huge<T>(buf: &mut [T]) {
    advise_huge_raw(buf.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(buf));
}

/// The same for the spare capacity of a buffer about to be filled
/// (`Vec::spare_capacity_mut`, `BytesMut::spare_capacity_mut`).
pub fn advise_huge_spare(spare: &mut [std::mem::MaybeUninit<u8>]) {
    advise_huge_raw(spare.as_mut_ptr().cast::<u8>(), spare.len());
}

/// Whether to advise at all: only with `WASMPAR_HUGE_PAGES=1` (read once).
fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("WASMPAR_HUGE_PAGES").is_ok_and(|v| v == "1"))
}

fn advise_huge_raw(ptr: *mut u8, len: usize) {
    if enabled() {
        madvise_huge(ptr, len);
    }
}

fn madvise_huge(ptr: *mut u8, len: usize) {
    if len < HUGE_FROM {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = (ptr as usize).next_multiple_of(PAGE);
        let end = (ptr as usize + len) / PAGE * PAGE;
        if end > start {
            // SAFETY: [start, end) is whole pages inside the caller's live
            // allocation; MADV_HUGEPAGE is advice that keeps its contents.
            let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
            if rc != 0 {
                tracing::trace!("madvise(MADV_HUGEPAGE) refused: {}", std::io::Error::last_os_error());
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = ptr;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_keeps_contents_and_length() {
        // The advice itself, whether or not the environment asks for it.
        let mut v: Vec<u64> = (0..(HUGE_FROM as u64)).collect();
        madvise_huge(v.as_mut_ptr().cast(), v.len() * 8);
        assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64));
        let mut b: Vec<u8> = Vec::with_capacity(HUGE_FROM * 2);
        b.extend_from_slice(b"abc");
        let spare = b.spare_capacity_mut();
        madvise_huge(spare.as_mut_ptr().cast(), spare.len());
        b.resize(HUGE_FROM * 2, 7);
        assert_eq!(&b[..3], b"abc");
        assert!(b[3..].iter().all(|&x| x == 7));
        advise_huge::<u8>(&mut []);
    }
}
