use super::*;

#[test]
fn lsn_positions_and_lag_seconds_parse() {
    assert_eq!(parse_lsn_bytes("0"), Some(0));
    assert_eq!(parse_lsn_bytes("50331648"), Some(50_331_648));
    assert_eq!(parse_lsn_bytes("50331648.000"), Some(50_331_648));
    assert_eq!(parse_lsn_bytes("18446744073709551615"), Some(u64::MAX));
    assert_eq!(parse_lsn_bytes("0/3000060"), Some(0x300_0060));
    assert_eq!(parse_lsn_bytes("16/B374D848"), Some(0x16_B374_D848));
    assert_eq!(parse_lsn_bytes("FFFFFFFF/FFFFFFFF"), Some(u64::MAX));
    for bad in [
        "",
        "-1",
        "1.5",
        "x/1",
        "1/100000000",
        "18446744073709551616",
    ] {
        assert_eq!(parse_lsn_bytes(bad), None, "{bad}");
    }
    assert_eq!(parse_seconds("0"), Some(Duration::ZERO));
    assert_eq!(parse_seconds("1.250000"), Some(Duration::from_millis(1250)));
    assert_eq!(parse_seconds("-0.5"), None);
    assert_eq!(parse_seconds("NaN"), None);
    assert_eq!(parse_seconds("soon"), None);
}
