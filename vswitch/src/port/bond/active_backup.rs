//! Active-backup: which one member carries the bond's traffic.
//!
//! The primary when its link is up; otherwise the current active member
//! while its link stays up (no needless moves); otherwise the first member,
//! in configuration order, whose link is up. When the primary's link comes
//! back, it takes over again.

/// The member that should be active given each member's link state.
pub fn choose(up: &[bool], current: Option<usize>, primary: Option<usize>) -> Option<usize> {
    let is_up = |m: usize| up.get(m).copied().unwrap_or(false);
    if let Some(p) = primary.filter(|p| is_up(*p)) {
        return Some(p);
    }
    if let Some(c) = current.filter(|c| is_up(*c)) {
        return Some(c);
    }
    up.iter().position(|u| *u)
}

#[cfg(test)]
mod tests {
    use super::choose;

    #[test]
    fn primary_wins_when_up() {
        assert_eq!(choose(&[true, true], Some(0), Some(1)), Some(1));
        assert_eq!(choose(&[true, false], Some(1), Some(1)), Some(0));
        assert_eq!(choose(&[false, false, true], None, Some(0)), Some(2));
    }

    #[test]
    fn the_active_member_stays_while_up() {
        assert_eq!(choose(&[true, true, true], Some(2), None), Some(2));
        assert_eq!(choose(&[true, true, false], Some(2), None), Some(0));
        assert_eq!(choose(&[false, true, true], Some(0), None), Some(1));
    }

    #[test]
    fn nothing_up_nothing_active() {
        assert_eq!(choose(&[false, false], Some(0), Some(1)), None);
        assert_eq!(choose(&[], None, None), None);
        assert_eq!(choose(&[true], Some(5), Some(9)), Some(0));
    }
}
