//! The upgrade matrix, both ends weft, over real TCP on 127.0.0.1:
//! {noise, tls} x yamux x {inlined muxer negotiation on/off at the dialer} x
//! {on/off at the listener} x {lazy proposals on/off} x {which node dials}.
//! Each cell upgrades, opens 100 concurrent streams from the dialer and 20 from the
//! listener, echoes data through half-closed streams and checks every byte.

#[path = "upgrade_support.rs"]
mod support;

use libp2p_identity::Keypair;
use support::{boxed, echo_many, serve_echo, tcp_pair, upgrader, Sec};
use weft_upgrader::Role;

#[derive(Debug, Clone, Copy)]
struct Cell {
    sec: Sec,
    dialer_inlines: bool,
    listener_inlines: bool,
    lazy: bool,
}

async fn run_cell(cell: Cell) {
    let (a, b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    // Each node dials the other once: "we" are initiator and responder.
    for (dialer_key, listener_key) in [(&a, &b), (&b, &a)] {
        let dialer = upgrader(cell.sec, dialer_key, cell.dialer_inlines, cell.lazy);
        let listener = upgrader(cell.sec, listener_key, cell.listener_inlines, cell.lazy);
        let (dialed, accepted) = tcp_pair().await;
        let expected = listener_key.public().to_peer_id();
        let (out, inc) = tokio::join!(
            dialer.upgrade_outbound(boxed(dialed), Some(expected)),
            listener.upgrade_inbound(boxed(accepted))
        );
        let out = out.unwrap_or_else(|e| panic!("{cell:?}: dialer: {e}"));
        let inc = inc.unwrap_or_else(|e| panic!("{cell:?}: listener: {e}"));

        assert_eq!(out.remote_peer, expected, "{cell:?}");
        assert_eq!(
            inc.remote_peer,
            dialer_key.public().to_peer_id(),
            "{cell:?}"
        );
        assert_eq!((out.role, inc.role), (Role::Initiator, Role::Responder));
        let security = match cell.sec {
            Sec::Noise => "/noise",
            Sec::Tls => "/tls/1.0.0",
        };
        let inlined = cell.dialer_inlines && cell.listener_inlines;
        for c in [&out, &inc] {
            assert_eq!(c.security_protocol, security, "{cell:?}");
            assert_eq!(c.muxer_protocol, "/yamux/1.0.0", "{cell:?}");
            assert_eq!(c.muxer_inlined, inlined, "{cell:?}: muxer_inlined");
        }

        let drivers = [tokio::spawn(out.driver), tokio::spawn(inc.driver)];
        let echo_at_listener = serve_echo(inc.muxed.clone());
        let echo_at_dialer = serve_echo(out.muxed.clone());
        tokio::join!(
            echo_many(&out.muxed, 100, 1_000),
            echo_many(&inc.muxed, 20, 2_000)
        );
        out.muxed.close().await.unwrap();
        for driver in drivers {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), driver)
                .await
                .unwrap_or_else(|_| panic!("{cell:?}: a driver did not end after close"));
        }
        echo_at_listener.abort();
        echo_at_dialer.abort();
    }
}

macro_rules! cells {
    ($($name:ident: $sec:ident, dialer_inlines $d:literal, listener_inlines $l:literal, lazy $lazy:literal;)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                run_cell(Cell {
                    sec: Sec::$sec,
                    dialer_inlines: $d,
                    listener_inlines: $l,
                    lazy: $lazy,
                })
                .await;
            }
        )*
    };
}

cells! {
    noise_inlined_lazy: Noise, dialer_inlines true, listener_inlines true, lazy true;
    noise_inlined_eager: Noise, dialer_inlines true, listener_inlines true, lazy false;
    noise_not_inlined_lazy: Noise, dialer_inlines false, listener_inlines false, lazy true;
    noise_not_inlined_eager: Noise, dialer_inlines false, listener_inlines false, lazy false;
    noise_only_dialer_inlines_lazy: Noise, dialer_inlines true, listener_inlines false, lazy true;
    noise_only_dialer_inlines_eager: Noise, dialer_inlines true, listener_inlines false, lazy false;
    noise_only_listener_inlines_lazy: Noise, dialer_inlines false, listener_inlines true, lazy true;
    noise_only_listener_inlines_eager: Noise, dialer_inlines false, listener_inlines true, lazy false;
    tls_inlined_lazy: Tls, dialer_inlines true, listener_inlines true, lazy true;
    tls_inlined_eager: Tls, dialer_inlines true, listener_inlines true, lazy false;
    tls_not_inlined_lazy: Tls, dialer_inlines false, listener_inlines false, lazy true;
    tls_not_inlined_eager: Tls, dialer_inlines false, listener_inlines false, lazy false;
    tls_only_dialer_inlines_lazy: Tls, dialer_inlines true, listener_inlines false, lazy true;
    tls_only_dialer_inlines_eager: Tls, dialer_inlines true, listener_inlines false, lazy false;
    tls_only_listener_inlines_lazy: Tls, dialer_inlines false, listener_inlines true, lazy true;
    tls_only_listener_inlines_eager: Tls, dialer_inlines false, listener_inlines true, lazy false;
}

/// Several security protocols: the dialer's preference wins when the listener
/// supports it, and the listener's list order does not matter.
#[tokio::test]
async fn security_preference_follows_the_dialer() {
    let (a, b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let build = |key: &Keypair, order: [Sec; 2]| {
        weft_upgrader::Upgrader::builder()
            .security(support::security(order[0], key))
            .security(support::security(order[1], key))
            .muxer(support::yamux())
            .build()
            .unwrap()
    };
    for (order, want) in [
        ([Sec::Tls, Sec::Noise], "/tls/1.0.0"),
        ([Sec::Noise, Sec::Tls], "/noise"),
    ] {
        let dialer = build(&a, order);
        let listener = build(&b, [order[1], order[0]]);
        let (dialed, accepted) = tcp_pair().await;
        let (out, inc) = tokio::join!(
            dialer.upgrade_outbound(boxed(dialed), None),
            listener.upgrade_inbound(boxed(accepted))
        );
        let (out, inc) = (out.unwrap(), inc.unwrap());
        assert_eq!(out.security_protocol, want);
        assert_eq!(inc.security_protocol, want);
        assert!(out.muxer_inlined && inc.muxer_inlined);
    }
}
