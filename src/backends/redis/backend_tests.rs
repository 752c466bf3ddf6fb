use super::*;

#[test]
fn role_replies_are_read() {
    let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
    let primary = Value::Array(vec![
        bulk("master"),
        Value::Int(3129659),
        Value::Array(vec![Value::Array(vec![
            bulk("127.0.0.1"),
            bulk("9001"),
            bulk("3129242"),
        ])]),
    ]);
    assert_eq!(
        parse_role(&primary).unwrap(),
        MemberStatus {
            role: Role::Primary,
            lag: None,
            position: Some(3129659)
        }
    );
    let replica = Value::Array(vec![
        bulk("slave"),
        bulk("127.0.0.1"),
        Value::Int(9000),
        bulk("connected"),
        Value::Int(3167038),
    ]);
    let status = parse_role(&replica).unwrap();
    assert_eq!(
        (status.role, status.position),
        (Role::Replica, Some(3167038))
    );
    // Before its first sync a replica's offset is -1: no position yet.
    let syncing = Value::Array(vec![
        bulk("slave"),
        bulk("127.0.0.1"),
        Value::Int(9000),
        bulk("connect"),
        Value::Int(-1),
    ]);
    assert_eq!(parse_role(&syncing).unwrap().position, None);
    for bad in [
        Value::Nil,
        Value::Array(vec![bulk("sentinel"), Value::Array(vec![])]),
        Value::Array(vec![bulk("master")]),
    ] {
        assert!(parse_role(&bad).is_err(), "{bad:?}");
    }
}
