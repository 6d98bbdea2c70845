// Command go-peer is weft's go-libp2p interop peer.
//
// It follows the interop peer contract shared by the go, js and rust peers (see
// interop-tests/README.md):
//
//	go-peer listen --security noise|tls [--ip 127.0.0.1] [--port 0] [--transport tcp|quic]
//	go-peer dial MULTIADDR --security noise|tls [--echo-bytes N] [--timeout-secs S]
//	go-peer transport-interop   (libp2p/test-plans' contract: env vars + redis)
//
// TCP (Noise or TLS, yamux) and QUIC v1 (quic.go). stdout carries only the contract's output
// (one multiaddr line for listen, one JSON line for dial); logs go to stderr.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	ma "github.com/multiformats/go-multiaddr"
)

const (
	agentVersion = "go-libp2p-interop-peer"
	echoProtocol = protocol.ID("/echo/1.0.0")
)

// dialReport is the one JSON line printed by `dial`.
type dialReport struct {
	OK           bool     `json:"ok"`
	RemotePeer   string   `json:"remote_peer,omitempty"`
	AgentVersion string   `json:"agent_version,omitempty"`
	Protocols    []string `json:"protocols,omitempty"`
	Security     string   `json:"security,omitempty"`
	Muxer        string   `json:"muxer,omitempty"`
	RTTMs        *float64 `json:"rtt_ms,omitempty"`
	EchoBytes    *int     `json:"echo_bytes,omitempty"`
	Error        string   `json:"error,omitempty"`
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage:")
	fmt.Fprintln(os.Stderr, "  go-peer listen --security noise|tls [--ip 127.0.0.1] [--port 0] [--transport tcp|quic]")
	fmt.Fprintln(os.Stderr, "  go-peer dial MULTIADDR --security noise|tls [--echo-bytes 1048576] [--timeout-secs 30]")
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "transport-interop":
		if err := transportInterop(); err != nil {
			fmt.Fprintln(os.Stderr, "transport-interop failed:", err)
			os.Exit(1)
		}
	case "listen":
		if err := listen(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "listen failed:", err)
			os.Exit(1)
		}
	case "dial":
		report := dial(os.Args[2:])
		line, err := json.Marshal(report)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cannot encode report:", err)
			os.Exit(1)
		}
		fmt.Println(string(line))
		if !report.OK {
			os.Exit(1)
		}
	default:
		// relay-server, relay-listen, relay-dial: relay.go.
		if !relayMode(os.Args[1], os.Args[2:]) {
			usage()
		}
	}
}

// securityOption maps the --security flag to a go-libp2p option.
func securityOption(name string) (libp2p.Option, error) {
	switch name {
	case "noise":
		return libp2p.Security(noise.ID, noise.New), nil
	case "tls":
		return libp2p.Security(libp2ptls.ID, libp2ptls.New), nil
	default:
		return nil, fmt.Errorf("unknown --security %q (want noise or tls)", name)
	}
}

// newHost builds a TCP (one security protocol, yamux) and QUIC host.
func newHost(security string, listenAddr string) (host.Host, error) {
	sec, err := securityOption(security)
	if err != nil {
		return nil, err
	}
	opts := []libp2p.Option{
		sec,
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.UserAgent(agentVersion),
		libp2p.Ping(true),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
	}
	opts = append(opts, transportOptions()...)
	if listenAddr == "" {
		opts = append(opts, libp2p.NoListenAddrs)
	} else {
		opts = append(opts, libp2p.ListenAddrStrings(listenAddr))
	}
	return libp2p.New(opts...)
}

// echoHandler copies every byte back until the remote half-closes, then
// closes the write side.
func echoHandler(s network.Stream) {
	if _, err := io.Copy(s, s); err != nil {
		fmt.Fprintln(os.Stderr, "echo stream failed:", err)
		_ = s.Reset()
		return
	}
	if err := s.CloseWrite(); err != nil {
		fmt.Fprintln(os.Stderr, "echo close-write failed:", err)
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

func listen(args []string) error {
	fs := flag.NewFlagSet("listen", flag.ContinueOnError)
	security := fs.String("security", "", "noise or tls")
	ip := fs.String("ip", "127.0.0.1", "IPv4 address to listen on")
	port := fs.Int("port", 0, "TCP or UDP port to listen on (0: any)")
	transport := fs.String("transport", "tcp", "tcp or quic")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	listenAddr, err := listenAddrFor(*transport, "ip4", *ip, *port)
	if err != nil {
		return err
	}
	h, err := newHost(*security, listenAddr)
	if err != nil {
		return err
	}
	defer h.Close()
	h.SetStreamHandler(echoProtocol, echoHandler)

	var addr ma.Multiaddr
	for _, a := range h.Network().ListenAddresses() {
		if isTransport(a, *transport) {
			addr = a
			break
		}
	}
	if addr == nil {
		return fmt.Errorf("no %s listen address", *transport)
	}
	fmt.Fprintf(os.Stdout, "%s/p2p/%s\n", addr, h.ID())
	_ = os.Stdout.Sync()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	<-sigs
	return nil
}

func dial(args []string) dialReport {
	fail := func(format string, a ...any) dialReport {
		return dialReport{OK: false, Error: fmt.Sprintf(format, a...)}
	}
	fs := flag.NewFlagSet("dial", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	security := fs.String("security", "", "noise or tls")
	echoBytes := fs.Int("echo-bytes", 1048576, "bytes to send through /echo/1.0.0")
	timeoutSecs := fs.Float64("timeout-secs", 30, "overall timeout in seconds")
	// The multiaddr comes first, flags after it; Go's flag package stops at the
	// first positional argument, so take it out first.
	addrArg := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		addrArg, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return fail("bad arguments: %v", err)
	}
	if addrArg == "" && fs.NArg() == 1 {
		addrArg = fs.Arg(0)
	} else if fs.NArg() != 0 {
		return fail("unexpected arguments: %v", fs.Args())
	}
	if addrArg == "" {
		return fail("missing MULTIADDR")
	}
	if *echoBytes < 0 {
		return fail("--echo-bytes must not be negative")
	}
	info, err := peer.AddrInfoFromString(addrArg)
	if err != nil {
		return fail("bad multiaddr %q: %v", addrArg, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*timeoutSecs*float64(time.Second)))
	defer cancel()

	h, err := newHost(*security, "")
	if err != nil {
		return fail("%v", err)
	}
	defer h.Close()

	sub, err := h.EventBus().Subscribe([]any{
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerIdentificationFailed),
	})
	if err != nil {
		return fail("event bus: %v", err)
	}
	defer sub.Close()

	if err := h.Connect(ctx, *info); err != nil {
		return fail("connect: %v", err)
	}

	var identified event.EvtPeerIdentificationCompleted
wait:
	for {
		select {
		case <-ctx.Done():
			return fail("waiting for identify: %v", ctx.Err())
		case ev := <-sub.Out():
			switch e := ev.(type) {
			case event.EvtPeerIdentificationCompleted:
				if e.Peer == info.ID {
					identified = e
					break wait
				}
			case event.EvtPeerIdentificationFailed:
				if e.Peer == info.ID {
					return fail("identify failed: %v", e.Reason)
				}
			}
		}
	}

	report := dialReport{
		OK:           true,
		RemotePeer:   info.ID.String(),
		AgentVersion: identified.AgentVersion,
		Protocols:    []string{},
	}
	for _, p := range identified.Protocols {
		report.Protocols = append(report.Protocols, string(p))
	}
	state := identified.Conn.ConnState()
	report.Security, report.Muxer = connNames(state)

	res := <-ping.Ping(ctx, h, info.ID)
	if res.Error != nil {
		return fail("ping: %v", res.Error)
	}
	rtt := float64(res.RTT.Nanoseconds()) / 1e6
	report.RTTMs = &rtt

	if err := echo(ctx, h, info.ID, *echoBytes); err != nil {
		return fail("echo: %v", err)
	}
	n := *echoBytes
	report.EchoBytes = &n
	return report
}

// echo sends n random bytes on /echo/1.0.0 while reading, half-closes, reads to
// EOF and checks that the same bytes came back.
func echo(ctx context.Context, h host.Host, p peer.ID, n int) error {
	s, err := h.NewStream(ctx, p, echoProtocol)
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	defer s.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(deadline)
	}
	payload := make([]byte, n)
	if _, err := rand.Read(payload); err != nil {
		return err
	}
	writeErr := make(chan error, 1)
	go func() {
		if _, err := s.Write(payload); err != nil {
			writeErr <- fmt.Errorf("write: %w", err)
			return
		}
		if err := s.CloseWrite(); err != nil {
			writeErr <- fmt.Errorf("close write: %w", err)
			return
		}
		writeErr <- nil
	}()
	received, err := io.ReadAll(io.LimitReader(s, int64(n)+1))
	if err != nil {
		_ = s.Reset()
		return fmt.Errorf("read: %w", err)
	}
	if err := <-writeErr; err != nil {
		return err
	}
	if len(received) != n {
		return fmt.Errorf("echoed %d bytes, sent %d", len(received), n)
	}
	if !bytes.Equal(received, payload) {
		return errors.New("echoed bytes differ from the bytes sent")
	}
	return nil
}
