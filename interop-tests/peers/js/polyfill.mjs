// Node 20 polyfills for js-libp2p 3.x, imported before any libp2p module.
//
// js-libp2p 3.x calls `Promise.withResolvers` (Node 22+) at run time. This file
// has no imports, so ES module evaluation order guarantees it runs before the
// libp2p modules that `peer.mjs` imports after it.
if (typeof Promise.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers () {
      let resolve
      let reject
      const promise = new this((res, rej) => {
        resolve = res
        reject = rej
      })
      return { promise, resolve, reject }
    }
  })
}
