use super::super::session::TransactionStatus;
use super::*;
use std::time::Duration;

fn feed_all(f: &mut Framer, chunks: &[&[u8]]) -> Vec<(char, Vec<u8>)> {
    let mut out = Vec::new();
    for c in chunks {
        f.feed(c, |frame, body| {
            if let Frame::End(t) = frame {
                out.push((t as char, body.to_vec()));
            }
        })
        .unwrap();
    }
    out
}

fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

#[test]
fn framer_follows_messages_split_anywhere() {
    let mut stream = Vec::new();
    stream.extend(msg(b'C', b"SELECT 1\0"));
    stream.extend(msg(b'Z', b"T"));
    stream.extend(msg(b'K', &[0, 0, 0, 42, 1, 2, 3, 4]));
    stream.extend(msg(b'I', b""));
    for split in 0..stream.len() {
        let mut f = Framer::default();
        let got = feed_all(&mut f, &[&stream[..split], &stream[split..]]);
        let tags: String = got.iter().map(|(t, _)| *t).collect();
        assert_eq!(tags, "CZKI", "split at {split}");
        assert_eq!(got[1].1, b"T");
        assert_eq!(&got[2].1[..4], &[0, 0, 0, 42]);
    }
    // Byte by byte.
    let mut f = Framer::default();
    let chunks: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(feed_all(&mut f, &chunks).len(), 4);
}

#[test]
fn framer_handles_untagged_startup_and_rejects_bad_lengths() {
    let mut f = Framer {
        untagged: 1,
        ..Framer::default()
    };
    let mut stream = 8i32.to_be_bytes().to_vec();
    stream.extend_from_slice(&80877103i32.to_be_bytes());
    stream.extend(msg(b'Q', b"BEGIN\0"));
    let got = feed_all(&mut f, &[&stream]);
    assert_eq!(
        got.iter().map(|(t, _)| *t as u32).collect::<Vec<_>>(),
        [0, 'Q' as u32]
    );
    let mut f = Framer::default();
    assert!(f.feed(&[b'Z', 0, 0, 0, 1], |_, _| {}).is_err());
}

fn tap() -> Tap<tokio::io::Empty> {
    let mut t = Tap::new(tokio::io::empty(), Arc::new(Session::new()), false);
    // Past the startup: StartupMessage written, ReadyForQuery read.
    t.tx.untagged = 0;
    t.observe_read(&msg(b'Z', b"I"));
    t
}

#[test]
fn session_tracks_status_and_requests_in_flight() {
    let mut t = tap();
    assert!(t.session.is_clean());
    t.observe_write(&msg(b'Q', b"BEGIN\0"));
    assert_eq!(t.session.in_flight(), 1);
    assert!(!t.session.is_clean());
    t.observe_read(&[msg(b'C', b"BEGIN\0"), msg(b'Z', b"T")].concat());
    assert_eq!(t.session.in_flight(), 0);
    assert_eq!(t.session.status(), TransactionStatus::InTransaction);
    // Extended protocol: Parse/Bind/Execute/Sync, one ReadyForQuery.
    let batch = [
        msg(b'P', b"\0COMMIT\0\0\0"),
        msg(b'B', b"\0\0\0\0\0\0\0\0"),
        msg(b'E', b"\0\0\0\0\0"),
        msg(b'S', b""),
    ]
    .concat();
    t.observe_write(&batch);
    assert_eq!(t.session.in_flight(), 1);
    t.observe_read(&[msg(b'2', b""), msg(b'C', b"COMMIT\0"), msg(b'Z', b"I")].concat());
    assert!(t.session.is_clean());
}

#[test]
fn extended_copy_in_sync_is_not_counted() {
    let mut t = tap();
    // copy_in: Bind, Execute, Sync (ignored in copy-in mode), data, CopyDone, Sync.
    t.observe_write(
        &[
            msg(b'B', b"\0\0\0\0\0\0\0\0"),
            msg(b'E', b"\0\0\0\0\0"),
            msg(b'S', b""),
        ]
        .concat(),
    );
    t.observe_read(&[msg(b'2', b""), msg(b'G', b"\0\0\0")].concat());
    t.observe_write(&[msg(b'd', b"1\n"), msg(b'c', b""), msg(b'S', b"")].concat());
    assert_eq!(t.session.in_flight(), 1);
    t.observe_read(&[msg(b'C', b"COPY 1\0"), msg(b'Z', b"I")].concat());
    assert!(t.session.is_clean());
}

#[test]
fn ssl_answer_switches_to_passthrough_or_plaintext_startup() {
    let session = Arc::new(Session::new());
    let mut t = Tap::new(tokio::io::empty(), Arc::clone(&session), true);
    let mut ssl_request = 8i32.to_be_bytes().to_vec();
    ssl_request.extend_from_slice(&80877103i32.to_be_bytes());
    t.observe_write(&ssl_request);
    t.observe_read(b"S");
    assert!(t.passthrough);
    t.observe_read(b"\x16\x03\x03garbage that is TLS");
    assert!(!session.desync.load(Ordering::Relaxed));

    let mut t = Tap::new(tokio::io::empty(), Arc::new(Session::new()), true);
    t.observe_write(&ssl_request);
    t.observe_read(b"N");
    let mut startup = 9i32.to_be_bytes().to_vec();
    startup.extend_from_slice(&196608i32.to_be_bytes());
    startup.push(0);
    t.observe_write(&startup);
    t.observe_read(
        &[
            msg(b'R', &[0, 0, 0, 0]),
            msg(b'K', &[0, 0, 1, 0, 9, 9, 9, 9]),
            msg(b'Z', b"I"),
        ]
        .concat(),
    );
    assert!(t.session.is_clean());
    assert_eq!(t.session.pid.load(Ordering::Relaxed), 256);
}

#[test]
fn framer_gives_the_same_messages_however_the_reads_split_them() {
    let stream = [
        msg(
            b'T',
            b"\0\x01?column?\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0",
        ),
        msg(b'D', b"\0\x01\0\0\0\x011"),
        msg(b'C', b"SELECT 1\0"),
        msg(b'Z', b"I"),
        msg(b'K', &[0, 0, 0, 42, 1, 2, 3, 4, 5]),
    ]
    .concat();
    let whole = feed_all(&mut Framer::default(), &[&stream]);
    assert_eq!(whole.len(), 5);
    assert_eq!(whole[3], ('Z', b"I".to_vec()));
    assert_eq!(whole[4].1, [0, 0, 0, 42, 1, 2, 3, 4], "the first 8 bytes");
    // Every way of cutting it into three reads.
    for i in 0..=stream.len() {
        for j in i..=stream.len() {
            let got = feed_all(
                &mut Framer::default(),
                &[&stream[..i], &stream[i..j], &stream[j..]],
            );
            assert_eq!(got, whole, "cut at {i} and {j}");
        }
    }
}

/// A tap past the startup over a socket that never answers.
fn silent_tap() -> (Tap<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
    let (near, far) = tokio::io::duplex(64);
    let mut t = Tap::new(near, Arc::new(Session::new()), false);
    t.tx.untagged = 0;
    t.observe_read(&msg(b'Z', b"I"));
    (t, far)
}

#[tokio::test(start_paused = true)]
async fn a_dropped_connection_with_a_request_unanswered_fails_its_socket_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut t, _far) = silent_tap();
    t.write_all(&msg(b'Q', b"SELECT pg_sleep(60)\0"))
        .await
        .unwrap();
    assert_eq!(t.session.in_flight(), 1);
    t.session.close(true);
    let mut buf = [0u8; 16];
    let e = t.read(&mut buf).await.expect_err("fails at once");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted, "{e}");
    let e = t.write_all(b"X\0\0\0\x04").await.expect_err("writes too");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_idle_connection_gets_its_grace_then_fails_its_socket() {
    use tokio::io::AsyncReadExt;
    let (mut t, _far) = silent_tap();
    let mut buf = [0u8; 16];
    // In use: a read just waits.
    let open = tokio::time::timeout(CLOSE_GRACE * 2, t.read(&mut buf)).await;
    assert!(open.is_err(), "no answer, no error: {open:?}");
    t.session.close(false);
    let start = tokio::time::Instant::now();
    let e = t.read(&mut buf).await.expect_err("fails after the grace");
    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    assert_eq!(start.elapsed(), CLOSE_GRACE);
}

#[tokio::test(start_paused = true)]
async fn a_connection_dropped_while_its_socket_takes_nothing_more_still_stops() {
    use tokio::io::AsyncWriteExt;
    // A request far bigger than the socket takes: the writer waits on the socket, not on
    // anything the connection's owner touches when it goes.
    let big = msg(b'Q', &[&vec![b'x'; 64 * 1024][..], b"\0"].concat());
    for abandoned in [true, false] {
        let (mut t, _far) = silent_tap();
        let session = Arc::clone(&t.session);
        let request = big.clone();
        let writer = tokio::spawn(async move { t.write_all(&request).await });
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        assert!(!writer.is_finished(), "the socket took it all");
        session.close(abandoned);
        let start = tokio::time::Instant::now();
        let ended = tokio::time::timeout(CLOSE_GRACE * 10, writer).await;
        let e = ended
            .expect("woken by the close")
            .unwrap()
            .expect_err("the write fails");
        let (kind, after) = if abandoned {
            (io::ErrorKind::ConnectionAborted, Duration::ZERO)
        } else {
            (io::ErrorKind::TimedOut, CLOSE_GRACE)
        };
        assert_eq!(e.kind(), kind, "{e}");
        assert_eq!(start.elapsed(), after);
    }
}
