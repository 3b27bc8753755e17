// Preloaded with `node -r` so that a server for the tests listens on
// 127.0.0.1 only: kinesis-local has no setting for its address and binds
// every interface. Each listen on a port is pinned to loopback; TLS servers
// are net servers too, so both of its ports are covered.
'use strict';
const net = require('net');

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const [first] = args;
  if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    const callback = typeof args[args.length - 1] === 'function' ? args.pop() : undefined;
    return listen.call(this, { port: Number(first), host: '127.0.0.1' }, callback);
  }
  if (first !== null && typeof first === 'object' && first.port !== undefined) {
    args[0] = { ...first, host: '127.0.0.1' };
  }
  return listen.apply(this, args);
};
