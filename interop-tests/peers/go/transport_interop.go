package main

// The go-libp2p peer's `transport-interop` mode: libp2p/test-plans' transport-interop
// contract (parameters from the environment, the listener's address through redis,
// one JSON line from the dialer), as weft's `weft-transport-interop` speaks it.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/redis/go-redis/v9"
)

const listenerAddrKey = "listenerAddr"

type interopReport struct {
	HandshakePlusOneRTTMillis float64 `json:"handshakePlusOneRTTMillis"`
	PingRTTMilllis            float64 `json:"pingRTTMilllis"`
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func transportInterop() error {
	transport := os.Getenv("transport")
	muxer := os.Getenv("muxer")
	security := os.Getenv("security")
	isDialer := os.Getenv("is_dialer")
	ip := envOr("ip", "0.0.0.0")
	redisAddr := envOr("redis_addr", "redis:6379")
	timeoutSecs, err := strconv.Atoi(envOr("test_timeout_seconds", "180"))
	if err != nil || timeoutSecs <= 0 {
		return fmt.Errorf("bad test_timeout_seconds %q", os.Getenv("test_timeout_seconds"))
	}
	// QUIC is secure and multiplexed on its own: test-plans sets neither security
	// nor muxer for it (the host's TLS option is then unused).
	listenTransport := "tcp"
	switch transport {
	case "tcp":
		if muxer != "yamux" {
			return fmt.Errorf("muxer %q is not supported (yamux only)", muxer)
		}
	case "quic-v1":
		listenTransport = "quic"
		security = "tls"
	default:
		return fmt.Errorf("transport %q is not supported (tcp, quic-v1)", transport)
	}
	if isDialer != "true" && isDialer != "false" {
		return fmt.Errorf("is_dialer %q: want true or false", isDialer)
	}
	timeout := time.Duration(timeoutSecs) * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	rdb := redis.NewClient(&redis.Options{Addr: redisAddr, ReadTimeout: timeout + time.Second})
	defer rdb.Close()

	if isDialer == "true" {
		h, err := newHost(security, "")
		if err != nil {
			return err
		}
		defer h.Close()
		popped, err := rdb.BLPop(ctx, timeout, listenerAddrKey).Result()
		if err != nil {
			return fmt.Errorf("BLPOP %s: %w", listenerAddrKey, err)
		}
		addr, err := ma.NewMultiaddr(popped[1])
		if err != nil {
			return fmt.Errorf("listenerAddr %q: %w", popped[1], err)
		}
		info, err := peer.AddrInfoFromP2pAddr(addr)
		if err != nil {
			return fmt.Errorf("listenerAddr %q: %w", popped[1], err)
		}
		start := time.Now()
		if err := h.Connect(ctx, *info); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		res := <-ping.Ping(ctx, h, info.ID)
		if res.Error != nil {
			return fmt.Errorf("ping: %w", res.Error)
		}
		line, err := json.Marshal(interopReport{
			HandshakePlusOneRTTMillis: float64(time.Since(start).Microseconds()) / 1e3,
			PingRTTMilllis:            float64(res.RTT.Microseconds()) / 1e3,
		})
		if err != nil {
			return err
		}
		fmt.Println(string(line))
		return nil
	}

	ipProto := "ip4"
	if parsed := net.ParseIP(ip); parsed == nil {
		return fmt.Errorf("bad ip %q", ip)
	} else if parsed.To4() == nil {
		ipProto = "ip6"
	}
	listenAddr, err := listenAddrFor(listenTransport, ipProto, ip, 0)
	if err != nil {
		return err
	}
	h, err := newHost(security, listenAddr)
	if err != nil {
		return err
	}
	defer h.Close()
	var chosen ma.Multiaddr
	for _, a := range h.Addrs() {
		if !isTransport(a, listenTransport) {
			continue
		}
		if chosen == nil || (manet.IsIPLoopback(chosen) && !manet.IsIPLoopback(a)) {
			chosen = a
		}
	}
	if chosen == nil {
		return fmt.Errorf("no %s listen address", listenTransport)
	}
	full := fmt.Sprintf("%s/p2p/%s", chosen, h.ID())
	fmt.Fprintln(os.Stderr, "listening on", full)
	if err := rdb.RPush(ctx, listenerAddrKey, full).Err(); err != nil {
		return fmt.Errorf("RPUSH %s: %w", listenerAddrKey, err)
	}
	<-ctx.Done()
	return fmt.Errorf("still running after the test timeout (%v)", timeout)
}
