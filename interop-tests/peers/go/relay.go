// Circuit relay v2 and hole punching modes of the go peer (for the relay interop
// tests and the NAT lab):
//
//	go-peer relay-server [--ip 127.0.0.1] [--port 0] [--transport tcp|quic]
//	    serves circuit relay v2 (hop); stdout: one line, its multiaddr with /p2p/.
//	go-peer relay-listen RELAY_MULTIADDR [--transport tcp|quic] [--ip 0.0.0.0]
//	        [--holepunch] [--public-ranges CIDR,...]
//	    reserves a slot at the relay; stdout: one line, RELAY/p2p-circuit/p2p/SELF;
//	    serves ping, identify and /echo/1.0.0 (also over the limited relayed
//	    connection) until killed.
//	go-peer relay-dial CIRCUIT_MULTIADDR [--transport tcp|quic] [--echo-bytes N]
//	        [--timeout-secs S] [--holepunch] [--public-ranges CIDR,...]
//	    connects through the relay, pings, echoes N bytes over the relayed
//	    connection and prints one JSON line (relayReport); with --holepunch it then
//	    waits for DCUtR to make a direct connection and reports how it went.
//
// Noise and yamux (TCP); QUIC brings its own. --public-ranges makes address ranges
// that go-multiaddr calls private or unroutable (the NAT lab's documentation ranges)
// count as public, as go-libp2p's hole punching waits for a public address.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// relayReport is the one JSON line printed by `relay-dial`.
type relayReport struct {
	OK         bool     `json:"ok"`
	RemotePeer string   `json:"remote_peer,omitempty"`
	Relayed    bool     `json:"relayed"`
	RTTMs      *float64 `json:"rtt_ms,omitempty"`
	EchoBytes  *int     `json:"echo_bytes,omitempty"`
	// Only with --holepunch: whether DCUtR made a direct connection, at which
	// attempt, how long after the relayed connection, and why not.
	Direct         *bool    `json:"direct,omitempty"`
	Attempts       *int     `json:"attempts,omitempty"`
	TimeToDirectMs *float64 `json:"time_to_direct_ms,omitempty"`
	PunchError     string   `json:"punch_error,omitempty"`
	Error          string   `json:"error,omitempty"`
}

// relayMode runs one of the relay subcommands; false when name is none of them.
func relayMode(name string, args []string) bool {
	var err error
	switch name {
	case "relay-server":
		err = relayServer(args)
	case "relay-listen":
		err = relayListen(args)
	case "relay-dial":
		report := relayDial(args)
		line, jerr := json.Marshal(report)
		if jerr != nil {
			err = jerr
			break
		}
		fmt.Println(string(line))
		if !report.OK {
			os.Exit(1)
		}
	default:
		return false
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s failed: %v\n", name, err)
		os.Exit(1)
	}
	return true
}

// relayHostOptions are the options every relay-mode host shares: one transport,
// Noise and yamux for TCP, no resource manager limits, no metrics.
func relayHostOptions(transport string, listen string) ([]libp2p.Option, error) {
	opts := []libp2p.Option{
		libp2p.UserAgent(agentVersion),
		libp2p.Ping(true),
		libp2p.DisableMetrics(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
	}
	switch transport {
	case "tcp":
		opts = append(opts,
			libp2p.Transport(tcp.NewTCPTransport),
			libp2p.Security(noise.ID, noise.New),
			libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		)
	case "quic":
		opts = append(opts, libp2p.Transport(libp2pquic.NewTransport))
	default:
		return nil, fmt.Errorf("unknown --transport %q (want tcp or quic)", transport)
	}
	if listen == "" {
		opts = append(opts, libp2p.NoListenAddrs)
	} else {
		opts = append(opts, libp2p.ListenAddrStrings(listen))
	}
	return opts, nil
}

// relayListenAddr is the listen address of transport on ip, any port.
func relayListenAddr(transport, ip string, port int) string {
	if transport == "quic" {
		return fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", ip, port)
	}
	return fmt.Sprintf("/ip4/%s/tcp/%d", ip, port)
}

// relayMakePublic removes from go-multiaddr's private and unroutable IPv4 ranges every
// range that overlaps one of cidrs (comma-separated), so addresses there count as
// public. The NAT lab's documentation ranges are unroutable on the internet, and
// go-libp2p would otherwise never start hole punching behind its NATs.
func relayMakePublic(cidrs string) error {
	if cidrs == "" {
		return nil
	}
	var nets []*net.IPNet
	for _, c := range strings.Split(cidrs, ",") {
		_, n, err := net.ParseCIDR(strings.TrimSpace(c))
		if err != nil {
			return fmt.Errorf("bad --public-ranges entry %q: %w", c, err)
		}
		nets = append(nets, n)
	}
	keep := func(ranges []*net.IPNet) []*net.IPNet {
		var kept []*net.IPNet
		for _, r := range ranges {
			overlaps := false
			for _, n := range nets {
				if r.Contains(n.IP) || n.Contains(r.IP) {
					overlaps = true
				}
			}
			if !overlaps {
				kept = append(kept, r)
			}
		}
		return kept
	}
	manet.Private4 = keep(manet.Private4)
	manet.Unroutable4 = keep(manet.Unroutable4)
	return nil
}

// relayWaitForSignal blocks until SIGINT or SIGTERM.
func relayWaitForSignal() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	<-sigs
}

// relayPrintAddr prints the first listen address of h for transport, with /p2p/.
func relayPrintAddr(h host.Host, transport string) error {
	code := ma.P_TCP
	if transport == "quic" {
		code = ma.P_QUIC_V1
	}
	for _, a := range h.Network().ListenAddresses() {
		if _, err := a.ValueForProtocol(code); err == nil {
			fmt.Printf("%s/p2p/%s\n", a, h.ID())
			_ = os.Stdout.Sync() // fails on a pipe; nothing to do about it
			return nil
		}
	}
	return fmt.Errorf("no %s listen address", transport)
}

func relayServer(args []string) error {
	fs := flag.NewFlagSet("relay-server", flag.ContinueOnError)
	ip := fs.String("ip", "127.0.0.1", "IPv4 address to listen on")
	port := fs.Int("port", 0, "port to listen on (0: any)")
	transport := fs.String("transport", "tcp", "tcp or quic")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts, err := relayHostOptions(*transport, relayListenAddr(*transport, *ip, *port))
	if err != nil {
		return err
	}
	// The relay service is made by hand: libp2p.EnableRelayService waits for
	// AutoNAT to call the host public, which never happens on 127.0.0.1.
	opts = append(opts, libp2p.DisableRelay())
	h, err := libp2p.New(opts...)
	if err != nil {
		return err
	}
	defer h.Close()
	relay, err := relayv2.New(h)
	if err != nil {
		return fmt.Errorf("relay service: %w", err)
	}
	defer relay.Close()
	if err := relayPrintAddr(h, *transport); err != nil {
		return err
	}
	relayWaitForSignal()
	return nil
}

// circuitFlags are the flags relay-listen and relay-dial share.
type circuitFlags struct {
	transport    *string
	holepunch    *bool
	publicRanges *string
}

func addCircuitFlags(fs *flag.FlagSet) circuitFlags {
	return circuitFlags{
		transport:    fs.String("transport", "tcp", "tcp or quic"),
		holepunch:    fs.Bool("holepunch", false, "enable DCUtR hole punching"),
		publicRanges: fs.String("public-ranges", "", "comma-separated CIDRs to treat as public"),
	}
}

// holePunchTrace records the hole punch events of a host for the report.
type holePunchTrace struct {
	attempts chan int
	ended    chan *holepunch.EndHolePunchEvt
}

func newHolePunchTrace() *holePunchTrace {
	return &holePunchTrace{
		attempts: make(chan int, 16),
		ended:    make(chan *holepunch.EndHolePunchEvt, 16),
	}
}

// Trace implements holepunch.EventTracer; it never blocks the service.
func (t *holePunchTrace) Trace(evt *holepunch.Event) {
	fmt.Fprintf(os.Stderr, "holepunch %s: %+v\n", evt.Type, evt.Evt)
	switch e := evt.Evt.(type) {
	case *holepunch.HolePunchAttemptEvt:
		select {
		case t.attempts <- e.Attempt:
		default:
		}
	case *holepunch.EndHolePunchEvt:
		select {
		case t.ended <- e:
		default:
		}
	}
}

// relayClientHost builds a relay client host: listening on ip (any port) so that a
// hole punch has a socket to punch from, with DCUtR when asked.
func relayClientHost(f circuitFlags, ip string, trace *holePunchTrace) (host.Host, error) {
	if err := relayMakePublic(*f.publicRanges); err != nil {
		return nil, err
	}
	listen := ""
	if ip != "" {
		listen = relayListenAddr(*f.transport, ip, 0)
	}
	opts, err := relayHostOptions(*f.transport, listen)
	if err != nil {
		return nil, err
	}
	opts = append(opts, libp2p.EnableRelay())
	if *f.holepunch {
		opts = append(opts,
			libp2p.EnableHolePunching(holepunch.WithTracer(trace)),
			// Behind the lab's NATs by construction: no AutoNAT probing.
			libp2p.ForceReachabilityPrivate(),
		)
	}
	return libp2p.New(opts...)
}

// waitForHolePunchService waits until DCUtR registered its protocol: go-libp2p
// does that only once the host knows a public address of its own, and a relayed
// connection that comes up earlier is never punched.
func waitForHolePunchService(ctx context.Context, h host.Host) error {
	for {
		for _, p := range h.Mux().Protocols() {
			if p == holepunch.Protocol {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the hole punch service did not start (no public address): %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func relayListen(args []string) error {
	fs := flag.NewFlagSet("relay-listen", flag.ContinueOnError)
	f := addCircuitFlags(fs)
	ip := fs.String("ip", "0.0.0.0", "IPv4 address to listen on directly (for hole punching)")
	timeoutSecs := fs.Float64("timeout-secs", 30, "time to reserve")
	relayArg := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		relayArg, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if relayArg == "" {
		return errors.New("missing RELAY_MULTIADDR")
	}
	relayAddr, err := ma.NewMultiaddr(relayArg)
	if err != nil {
		return fmt.Errorf("bad relay multiaddr: %w", err)
	}
	relayInfo, err := peer.AddrInfoFromP2pAddr(relayAddr)
	if err != nil {
		return fmt.Errorf("relay multiaddr without /p2p/: %w", err)
	}
	h, err := relayClientHost(f, *ip, newHolePunchTrace())
	if err != nil {
		return err
	}
	defer h.Close()
	h.SetStreamHandler(echoProtocol, echoHandler)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*timeoutSecs*float64(time.Second)))
	defer cancel()
	if err := h.Connect(ctx, *relayInfo); err != nil {
		return fmt.Errorf("connect to the relay: %w", err)
	}
	reservation, err := client.Reserve(ctx, h, *relayInfo)
	if err != nil {
		return fmt.Errorf("reserve: %w", err)
	}
	fmt.Fprintf(os.Stderr, "reserved until %s, relay addrs %v\n", reservation.Expiration.Format(time.RFC3339), reservation.Addrs)
	if *f.holepunch {
		if err := waitForHolePunchService(ctx, h); err != nil {
			return err
		}
	}
	fmt.Printf("%s/p2p-circuit/p2p/%s\n", relayAddr, h.ID())
	_ = os.Stdout.Sync()
	relayWaitForSignal()
	return nil
}

func relayDial(args []string) relayReport {
	fail := func(format string, a ...any) relayReport {
		return relayReport{OK: false, Error: fmt.Sprintf(format, a...)}
	}
	fs := flag.NewFlagSet("relay-dial", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	f := addCircuitFlags(fs)
	ip := fs.String("ip", "", "IPv4 address to listen on directly (default: 0.0.0.0 with --holepunch, none without)")
	echoBytes := fs.Int("echo-bytes", 1024, "bytes to echo through the relayed connection")
	timeoutSecs := fs.Float64("timeout-secs", 30, "overall timeout in seconds")
	addrArg := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		addrArg, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return fail("bad arguments: %v", err)
	}
	if addrArg == "" {
		return fail("missing CIRCUIT_MULTIADDR")
	}
	if *echoBytes < 0 {
		return fail("--echo-bytes must not be negative")
	}
	info, err := peer.AddrInfoFromString(addrArg)
	if err != nil {
		return fail("bad multiaddr %q: %v", addrArg, err)
	}
	listenIP := *ip
	if listenIP == "" && *f.holepunch {
		listenIP = "0.0.0.0"
	}
	trace := newHolePunchTrace()
	h, err := relayClientHost(f, listenIP, trace)
	if err != nil {
		return fail("%v", err)
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*timeoutSecs*float64(time.Second)))
	defer cancel()
	// The hole punch starts as soon as the relayed connection is up; the
	// service must be listening for it by then.
	if *f.holepunch {
		relayAddr, _ := ma.SplitFunc(info.Addrs[0], func(c ma.Component) bool { return c.Protocol().Code == ma.P_CIRCUIT })
		if relayInfo, err := peer.AddrInfoFromP2pAddr(relayAddr); err == nil {
			if err := h.Connect(ctx, *relayInfo); err != nil {
				return fail("connect to the relay: %v", err)
			}
		}
		if err := waitForHolePunchService(ctx, h); err != nil {
			return fail("%v", err)
		}
	}
	if err := h.Connect(ctx, *info); err != nil {
		return fail("connect through the relay: %v", err)
	}
	relayedAt := time.Now()
	report := relayReport{OK: true, RemotePeer: info.ID.String()}
	for _, c := range h.Network().ConnsToPeer(info.ID) {
		if relayIsCircuit(c) {
			report.Relayed = true
		}
	}
	limited := network.WithAllowLimitedConn(ctx, "relay interop")
	res := <-ping.Ping(limited, h, info.ID)
	if res.Error != nil {
		return fail("ping: %v", res.Error)
	}
	rtt := float64(res.RTT.Nanoseconds()) / 1e6
	report.RTTMs = &rtt
	if err := echo(limited, h, info.ID, *echoBytes); err != nil {
		return fail("echo: %v", err)
	}
	n := *echoBytes
	report.EchoBytes = &n
	if *f.holepunch {
		relayAwaitDirect(ctx, h, info.ID, trace, relayedAt, &report)
	}
	return report
}

// relayAwaitDirect waits for DCUtR's outcome and fills the hole punch fields of report.
func relayAwaitDirect(ctx context.Context, h host.Host, p peer.ID, trace *holePunchTrace, since time.Time, report *relayReport) {
	attempts := 0
	direct := false
	done := func() {
		report.Direct = &direct
		report.Attempts = &attempts
		if direct {
			ms := float64(time.Since(since).Nanoseconds()) / 1e6
			report.TimeToDirectMs = &ms
		}
	}
	defer done()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, c := range h.Network().ConnsToPeer(p) {
			if !relayIsCircuit(c) {
				direct = true
				if attempts == 0 {
					attempts = 1
				}
				return
			}
		}
		select {
		case <-ctx.Done():
			report.PunchError = fmt.Sprintf("no direct connection: %v", ctx.Err())
			return
		case a := <-trace.attempts:
			attempts = a
		case e := <-trace.ended:
			if !e.Success {
				report.PunchError = e.Error
				return
			}
		case <-tick.C:
		}
	}
}

// relayIsCircuit reports whether a connection runs through a relay.
func relayIsCircuit(c network.Conn) bool {
	_, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}
