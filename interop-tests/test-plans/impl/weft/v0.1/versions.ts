// The entry to add to test-plans' transport-interop/versions.ts.
{
    id: "weft-v0.1",
    transports: ["tcp", "quic-v1"],
    secureChannels: ["noise", "tls"],
    muxers: ["yamux"],
},
