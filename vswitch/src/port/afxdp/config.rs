//! Options of `type=afxdp` ports: `queues=N` and
//! `xdp_mode=native|generic|auto`.

use crate::control::protocol::Options;

/// Most receive queues one port may take (one socket and UMEM each).
pub const MAX_QUEUES: u32 = 64;

/// Every option an afxdp port takes besides the VLAN mode and policy.
pub const KEYS: &[&str] = &["type", "iface", "queues", "xdp_mode"];

/// Where the XDP program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// In the driver (XDP_FLAGS_DRV_MODE); refused if it has no XDP.
    Native,
    /// After the kernel built an skb (XDP_FLAGS_SKB_MODE): any driver.
    Generic,
    /// Native if the driver has it, else generic.
    #[default]
    Auto,
}

impl XdpMode {
    pub fn as_str(self) -> &'static str {
        match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
            XdpMode::Auto => "auto",
        }
    }
}

impl std::str::FromStr for XdpMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "native" => Ok(XdpMode::Native),
            "generic" => Ok(XdpMode::Generic),
            "auto" => Ok(XdpMode::Auto),
            other => Err(format!(
                "xdp_mode={other:?}: expected native, generic or auto"
            )),
        }
    }
}

/// An afxdp port's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfXdpConfig {
    /// Receive queues 0..queues get a socket each.
    pub queues: u32,
    pub mode: XdpMode,
}

impl Default for AfXdpConfig {
    fn default() -> Self {
        AfXdpConfig {
            queues: 1,
            mode: XdpMode::Auto,
        }
    }
}

impl AfXdpConfig {
    /// Parses `queues` and `xdp_mode` (unknown keys are the caller's job).
    pub fn parse(options: &Options) -> Result<AfXdpConfig, String> {
        let queues = match options.get("queues") {
            Some(v) => v
                .parse::<u32>()
                .map_err(|_| format!("queues={v:?} is not a number"))?,
            None => 1,
        };
        if !(1..=MAX_QUEUES).contains(&queues) {
            return Err(format!("queues={queues} out of range: 1 to {MAX_QUEUES}"));
        }
        let mode = match options.get("xdp_mode") {
            Some(v) => v.parse()?,
            None => XdpMode::Auto,
        };
        Ok(AfXdpConfig { queues, mode })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> Options {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(
            AfXdpConfig::parse(&opts(&[])).unwrap(),
            AfXdpConfig::default()
        );
        let c = AfXdpConfig::parse(&opts(&[("queues", "4"), ("xdp_mode", "generic")])).unwrap();
        assert_eq!((c.queues, c.mode), (4, XdpMode::Generic));
        let c = AfXdpConfig::parse(&opts(&[("xdp_mode", "native")])).unwrap();
        assert_eq!(c.mode, XdpMode::Native);
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let e = AfXdpConfig::parse(&opts(&[("queues", "0")])).unwrap_err();
        assert!(e.contains("queues=0") && e.contains("1 to 64"), "{e}");
        let e = AfXdpConfig::parse(&opts(&[("queues", "65")])).unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        let e = AfXdpConfig::parse(&opts(&[("queues", "two")])).unwrap_err();
        assert!(e.contains("not a number"), "{e}");
        let e = AfXdpConfig::parse(&opts(&[("xdp_mode", "offload")])).unwrap_err();
        assert!(e.contains("native, generic or auto"), "{e}");
    }
}
