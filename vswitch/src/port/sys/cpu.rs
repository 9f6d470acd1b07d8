//! Pinning a datapath worker to a CPU (`vswitchd --worker-cpus`).

use std::io;

/// Restricts the calling thread to CPU `cpu`. Fails (and changes nothing)
/// if the CPU does not exist or is outside the process's allowed set.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    let bits = 8 * std::mem::size_of::<libc::cpu_set_t>();
    if cpu >= bits {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("CPU {cpu} is beyond the {bits} a CPU set holds"),
        ));
    }
    // SAFETY: cpu_set_t is a plain bit array, valid when zeroed.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below the set's size in bits (checked above), so
    // CPU_SET writes inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: the pointer and size describe `set`, alive for the call; pid 0
    // is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The CPUs the calling thread may run on.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: as above, a zeroed cpu_set_t is an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer and size describe `set`, which the kernel fills.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let bits = 8 * std::mem::size_of::<libc::cpu_set_t>();
    Ok((0..bits)
        .filter(|&c| {
            // SAFETY: `c` is below the set's size in bits.
            unsafe { libc::CPU_ISSET(c, &set) }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_to_an_allowed_cpu_and_refuses_a_missing_one() {
        // In a thread of its own: the test harness's threads keep their set.
        std::thread::spawn(|| {
            let allowed = allowed_cpus().unwrap();
            let last = *allowed.last().unwrap();
            pin_current_thread(last).unwrap();
            assert_eq!(allowed_cpus().unwrap(), vec![last]);
            assert!(pin_current_thread(100_000).is_err());
            let absent = (0..1024).find(|c| !allowed.contains(c)).unwrap();
            assert!(pin_current_thread(absent).is_err(), "CPU {absent}");
        })
        .join()
        .unwrap();
    }
}
