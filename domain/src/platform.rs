//! The ad platforms adledger can connect to.

crate::named_enum! {
    pub enum Platform {
        /// Built-in deterministic generator of accounts, campaigns and daily metrics (demos, tests).
        Sandbox => "sandbox",
        /// Meta (Facebook / Instagram) Marketing API.
        Meta => "meta",
        /// Google Ads API.
        Google => "google",
        /// TikTok Business (Marketing) API.
        Tiktok => "tiktok",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for p in Platform::ALL {
            assert_eq!(Platform::parse(p.as_str()), Some(p));
            assert_eq!(
                serde_json::to_string(&p).unwrap(),
                format!("\"{}\"", p.as_str())
            );
        }
        assert_eq!(Platform::parse("facebook"), None);
    }
}
