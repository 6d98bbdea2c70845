//! TLS's buffers are charged to the memory budget the upgrader passes: reserved
//! for as long as the channel lives, given back when it is dropped, and a denied
//! reservation fails the handshake with an error that says so.

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p_identity::Keypair;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::compat::TokioAsyncReadCompatExt;
use weft_upgrader::test_suite::CountingBudget;
use weft_upgrader::{BoxedIo, Budget, SecuredConnection, SecurityError, SecurityUpgrade};

fn upgrade(keypair: Keypair) -> Arc<dyn SecurityUpgrade> {
    Arc::new(weft_security_tls::TlsUpgrade::new(keypair))
}

async fn tcp_pair() -> (BoxedIo, BoxedIo) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (dialed, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (
        Box::new(dialed.unwrap().compat()),
        Box::new(accepted.unwrap().0.compat()),
    )
}

type Outcome = Result<SecuredConnection, SecurityError>;

async fn handshake(dialer_budget: Budget, listener_budget: Budget) -> (Outcome, Outcome) {
    let dialer = upgrade(Keypair::generate_ed25519());
    let listener = upgrade(Keypair::generate_ed25519());
    let (a, b) = tcp_pair().await;
    let run = futures::future::join(
        dialer.secure_outbound_with_budget(a, None, &[], dialer_budget),
        listener.secure_inbound_with_budget(b, &[], listener_budget),
    );
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("the handshake hung")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_buffers_stay_reserved_while_the_channel_lives() {
    let (dialer_used, dialer_budget) = CountingBudget::new(1 << 20);
    let (listener_used, listener_budget) = CountingBudget::new(1 << 20);
    let (a, b) = handshake(dialer_budget, listener_budget).await;
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    for used in [&dialer_used, &listener_used] {
        let bytes = used.used();
        assert!(
            ((16 << 10)..=(128 << 10)).contains(&bytes),
            "{bytes} bytes reserved"
        );
    }
    let data = vec![5u8; 300_000];
    let sent = data.clone();
    let writer = async move {
        a.io.write_all(&sent).await.unwrap();
        a.io.close().await.unwrap();
        a
    };
    let mut got = Vec::new();
    let (a, _) = tokio::time::timeout(
        Duration::from_secs(20),
        futures::future::join(writer, b.io.read_to_end(&mut got)),
    )
    .await
    .expect("the transfer hung");
    assert!(got == data);
    drop((a, b));
    assert_eq!(dialer_used.used(), 0);
    assert_eq!(listener_used.used(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_reservation_fails_the_handshake_and_says_so() {
    let (_, dialer_budget) = CountingBudget::new(1 << 20);
    let (listener_used, listener_budget) = CountingBudget::new(1024);
    let (dialer, listener) = handshake(dialer_budget, listener_budget).await;
    let error = listener.expect_err("a handshake without memory must fail");
    let text = error.to_string();
    assert!(
        text.contains("memory budget denied the handshake buffers"),
        "unexpected error: {text}"
    );
    assert!(dialer.is_err(), "the dialer must see the failure too");
    assert_eq!(listener_used.used(), 0);
}
