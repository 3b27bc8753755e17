//! The servers start, answer, and survive a restart.

#[test]
fn postgres_starts_answers_and_restarts() {
    let cluster = sluice_test_support::postgres::shared();
    let url = cluster.fresh_database("support");
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client.batch_execute("CREATE TABLE t (v int); INSERT INTO t VALUES (7)").unwrap();
    cluster.restart();
    assert!(client.query_one("SELECT v FROM t", &[]).is_err(), "the old connection is cut");
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let v: i32 = client.query_one("SELECT v FROM t", &[]).unwrap().get(0);
    assert_eq!(v, 7);
}

#[test]
fn moto_answers_http() {
    use std::io::{Read, Write};
    let endpoint = sluice_test_support::moto::shared().endpoint();
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET /moto-api/ HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.") && reply.contains(" 200 "), "{}", &reply[..reply.len().min(200)]);
}
