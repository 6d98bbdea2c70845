package main

// QUIC for the go-libp2p peer: every host runs TCP and QUIC v1, so a dial follows its
// address; `listen --transport tcp|quic` picks what to listen on, and the
// transport-interop mode takes test-plans' `transport=quic-v1`.

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// transportOptions are the transports of every host: TCP and QUIC v1.
func transportOptions() []libp2p.Option {
	return []libp2p.Option{
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(libp2pquic.NewTransport),
	}
}

// listenAddrFor is the multiaddr to listen on for `--transport` ("tcp" or "quic").
func listenAddrFor(transport, ipProto, ip string, port int) (string, error) {
	switch transport {
	case "tcp":
		return fmt.Sprintf("/%s/%s/tcp/%d", ipProto, ip, port), nil
	case "quic":
		return fmt.Sprintf("/%s/%s/udp/%d/quic-v1", ipProto, ip, port), nil
	default:
		return "", fmt.Errorf("unknown --transport %q (want tcp or quic)", transport)
	}
}

// isTransport reports whether a is an address of the transport ("tcp" or "quic").
func isTransport(a ma.Multiaddr, transport string) bool {
	code := ma.P_TCP
	if transport == "quic" {
		code = ma.P_QUIC_V1
	}
	_, err := a.ValueForProtocol(code)
	return err == nil
}

// connNames are a connection's security and muxer ids as the dial report names them.
// go-libp2p's QUIC connections leave both empty: they run libp2p TLS inside QUIC and
// QUIC's own streams, which the report calls "/tls/1.0.0" and "quic-v1".
func connNames(state network.ConnectionState) (security, muxer string) {
	security, muxer = string(state.Security), string(state.StreamMultiplexer)
	if state.Transport == "quic-v1" {
		if security == "" {
			security = "/tls/1.0.0"
		}
		if muxer == "" {
			muxer = "quic-v1"
		}
	}
	return security, muxer
}
