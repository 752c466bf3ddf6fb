use super::*;

fn tracked(cmds: &[&[&str]]) -> State {
    let mut s = State::default();
    for c in cmds {
        let mut cmd = ::redis::cmd(c[0]);
        for a in &c[1..] {
            cmd.arg(*a);
        }
        s.track(&cmd, true);
    }
    s
}

#[test]
fn transaction_state_is_tracked() {
    let s = tracked(&[&["multi"], &["SET", "k", "v"]]);
    assert!(s.multi && !s.watching && !s.poisoned);
    let s = tracked(&[&["WATCH", "k"], &["MULTI"], &["EXEC"]]);
    assert_eq!(s, State::default());
    let s = tracked(&[&["WATCH", "k"]]);
    assert!(s.watching && !s.multi);
    let s = tracked(&[&["WATCH", "k"], &["unwatch"]]);
    assert_eq!(s, State::default());
    let s = tracked(&[&["MULTI"], &["UNWATCH"]]);
    assert!(s.multi, "UNWATCH inside MULTI is only queued");
    let s = tracked(&[&["SELECT", "3"]]);
    assert!(s.db_changed);
    for poison in [
        &["SUBSCRIBE", "ch"][..],
        &["monitor"],
        &["CLIENT", "REPLY", "OFF"],
        &["client", "tracking", "on"],
        &["HELLO", "3"],
    ] {
        assert!(tracked(&[poison]).poisoned, "{poison:?}");
    }
    assert!(!tracked(&[&["CLIENT", "ID"], &["GET", "MULTI"]]).poisoned);
    assert!(!tracked(&[&["GET", "MULTI"]]).multi);

    // A failed EXEC does not prove the transaction is over.
    let mut s = tracked(&[&["MULTI"]]);
    s.track(&::redis::cmd("EXEC"), false);
    assert!(s.multi);
}
