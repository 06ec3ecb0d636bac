//! Retention periods as written in the policy file: a number and a unit (`90s`, `15m`, `12h`,
//! `30d`, `8w`, `2y`; a year is 365 days).

/// Seconds in `text`, or why it is not a duration.
pub(crate) fn parse(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit: write for example `30d`"))?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number: write for example `30d`"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "y" => 365 * 86_400,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}` (use s, m, h, d, w or y)"
            ));
        }
    };
    match n.checked_mul(scale) {
        Some(0) => Err(format!("`{text}` is zero: a retention must be positive")),
        Some(s) => Ok(s),
        None => Err(format!("`{text}` is too long")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_bad_ones_say_why() {
        assert_eq!(parse("30d"), Ok(30 * 86_400));
        assert_eq!(parse("2y"), Ok(2 * 365 * 86_400));
        assert_eq!(parse("90s"), Ok(90));
        assert!(parse("30").unwrap_err().contains("no unit"));
        assert!(parse("d").unwrap_err().contains("number"));
        assert!(parse("3q").unwrap_err().contains("unknown unit"));
        assert!(parse("0d").unwrap_err().contains("zero"));
    }
}
