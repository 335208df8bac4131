// s3_server.js — an S3-compatible server on loopback for the S3/CSV tests:
// s3rver (npm, MIT) stores buckets and objects and answers the S3 API;
// in front of it this script checks every request's AWS Signature V4 the
// way S3 does (s3rver does not), so the connector's signing is tested for
// real, and adds what the tests need around it:
//
//   - credentials: requests must be signed with a registered key pair
//     (and its session token, when it has one);
//   - a request log (method, URL, Range, who signed) for the assertions;
//   - faults: cut an object's download after N bytes, or slow it down;
//   - virtual-host addressing: <bucket>.localhost is rewritten to a path.
//
// Requests carrying the admin token (the test itself: creating buckets,
// uploading objects, the /__admin endpoints) skip the signature check.
//
// Environment: S3RVER_MODULE (path of the s3rver package), S3_DATA_DIR,
// S3_ADMIN_TOKEN, S3_REGION (default us-east-1). Prints one JSON line
// {"port": N} when it listens on 127.0.0.1.
'use strict';

const crypto = require('crypto');
const http = require('http');

// s3rver makes ListObjectsV2 continuation tokens with DES, which OpenSSL 3
// only has in its legacy provider: without it every truncated listing is a
// 500. The tokens are opaque to clients, so where DES is missing a
// reversible stand-in (XOR with a SHA-256 key stream of key and IV) is used.
function desMissing() {
  try {
    crypto.createCipheriv('des', Buffer.alloc(8), Buffer.alloc(8));
    return false;
  } catch (e) {
    return true;
  }
}
if (desMissing()) {
  const stream = (key, iv) => {
    let counter = 0, block = Buffer.alloc(0), used = 0;
    return data => Buffer.from(data.map(b => {
      if (used === block.length) {
        block = crypto.createHash('sha256').update(key).update(iv).update(String(counter++)).digest();
        used = 0;
      }
      return b ^ block[used++];
    }));
  };
  const shim = (key, iv) => {
    const xor = stream(key, iv);
    return {
      update: (data, enc) => xor(Buffer.isBuffer(data) ? data : Buffer.from(data, enc)),
      final: () => Buffer.alloc(0),
    };
  };
  const { createCipheriv, createDecipheriv } = crypto;
  crypto.createCipheriv = (alg, key, iv, ...rest) =>
    alg === 'des' ? shim(key, iv) : createCipheriv(alg, key, iv, ...rest);
  crypto.createDecipheriv = (alg, key, iv, ...rest) =>
    alg === 'des' ? shim(key, iv) : createDecipheriv(alg, key, iv, ...rest);
}

const S3rver = require(process.env.S3RVER_MODULE || 's3rver');

const REGION = process.env.S3_REGION || 'us-east-1';
const ADMIN = process.env.S3_ADMIN_TOKEN || '';
const credentials = new Map(); // access key id -> {secret, token}
const requestLog = [];
let faults = []; // {key, cut_after_bytes, throttle_bps, times}

function xmlError(res, status, code, message) {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code>` +
    `<Message>${message}</Message><RequestId>s3-test</RequestId></Error>`;
  res.writeHead(status, {'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body)});
  res.end(body);
}

// ---------------------------------------------------------------- SigV4

const rfc3986 = s => encodeURIComponent(s).replace(/[!'()*]/g,
  c => '%' + c.charCodeAt(0).toString(16).toUpperCase());

function decode(s) {
  try {
    return decodeURIComponent(s);
  } catch (e) {
    return null;
  }
}

// S3 signs each path segment URI-encoded once, whatever the client sent.
function canonicalPath(rawPath) {
  const parts = rawPath.split('/').map(decode);
  return parts.includes(null) ? null : parts.map(rfc3986).join('/');
}

function canonicalQuery(rawQuery) {
  if (!rawQuery) return '';
  const pairs = [];
  for (const item of rawQuery.split('&')) {
    if (!item) continue;
    const eq = item.indexOf('=');
    const k = decode(eq < 0 ? item : item.slice(0, eq));
    const v = decode(eq < 0 ? '' : item.slice(eq + 1));
    if (k === null || v === null) return null;
    pairs.push([rfc3986(k), rfc3986(v)]);
  }
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

const hmac = (key, text) => crypto.createHmac('sha256', key).update(text).digest();
const sha256hex = text => crypto.createHash('sha256').update(text).digest('hex');

function amzTime(text) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text || '');
  return m ? Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5], +m[6]) : NaN;
}

// Returns null when the request is properly signed, else [status, code, message].
function verify(req) {
  const auth = req.headers['authorization'];
  if (!auth) return [403, 'AccessDenied', 'Anonymous access is forbidden for this operation'];
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return [400, 'AuthorizationHeaderMalformed', 'The authorization header is malformed'];
  const [, key, day, region, service, signedList, signature] = m;
  const cred = credentials.get(key);
  if (!cred) return [403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.'];
  if (region !== REGION) return [400, 'AuthorizationHeaderMalformed', `the region '${region}' is wrong; expecting '${REGION}'`];
  if (service !== 's3') return [400, 'AuthorizationHeaderMalformed', 'the service must be s3'];
  const signed = signedList.split(';');
  for (const h of ['host', 'x-amz-date', 'x-amz-content-sha256'])
    if (!signed.includes(h)) return [403, 'AccessDenied', `${h} must be signed`];
  const payload = req.headers['x-amz-content-sha256'];
  if (!payload) return [400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256'];
  const when = amzTime(req.headers['x-amz-date']);
  if (isNaN(when) || Math.abs(Date.now() - when) > 15 * 60 * 1000)
    return [403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.'];
  if (cred.token !== undefined) {
    if (req.headers['x-amz-security-token'] !== cred.token || !signed.includes('x-amz-security-token'))
      return [403, 'InvalidToken', 'The provided token is malformed or otherwise invalid.'];
  }
  const q = req.url.indexOf('?');
  const path = canonicalPath(q < 0 ? req.url : req.url.slice(0, q));
  const query = canonicalQuery(q < 0 ? '' : req.url.slice(q + 1));
  if (path === null || query === null) return [400, 'InvalidURI', 'Could not parse the specified URI.'];
  const headers = signed.map(h => {
    const v = req.headers[h];
    if (v === undefined) return null;
    return `${h}:${String(v).trim().replace(/\s+/g, ' ')}\n`;
  });
  if (headers.includes(null)) return [403, 'AccessDenied', 'a signed header is missing'];
  const canonical = [req.method, path, query, headers.join(''), signedList, payload].join('\n');
  const scope = `${day}/${region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', req.headers['x-amz-date'], scope, sha256hex(canonical)].join('\n');
  const kDate = hmac('AWS4' + cred.secret, day);
  const kSigning = hmac(hmac(hmac(kDate, region), service), 'aws4_request');
  const expected = hmac(kSigning, toSign).toString('hex');
  if (!crypto.timingSafeEqual(Buffer.from(expected), Buffer.from(signature)))
    return [403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.'];
  return null;
}

// ---------------------------------------------------------------- faults

function objectKey(url) {
  const path = url.split('?')[0];
  const parts = path.split('/').slice(2); // after /bucket/
  return decode(parts.join('/'));
}

function takeFault(req) {
  if (req.method !== 'GET' || req.url.includes('list-type') || req.headers['range'] &&
      /^bytes=(\d+)-\1$/.test(req.headers['range'])) return null; // not listings or range probes
  const key = objectKey(req.url);
  const f = faults.find(x => x.key === key && x.times > 0);
  if (!f) return null;
  f.times -= 1;
  return f;
}

// Cut the body after f.cut_after_bytes, or pace it at f.throttle_bps.
function applyFault(res, f) {
  const write = res.write.bind(res);
  let sent = 0;
  res.write = (chunk, enc, cb) => {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, enc);
    if (f.cut_after_bytes !== undefined && sent + buf.length >= f.cut_after_bytes) {
      const part = buf.subarray(0, Math.max(0, f.cut_after_bytes - sent));
      sent += part.length;
      write(part, () => res.socket && res.socket.destroy());
      return false;
    }
    sent += buf.length;
    const ok = write(buf, cb);
    if (!f.throttle_bps) return ok;
    setTimeout(() => res.emit('drain'), Math.ceil(buf.length * 1000 / f.throttle_bps));
    return false;
  };
}

// ---------------------------------------------------------------- admin

function readBody(req) {
  return new Promise(resolve => {
    const chunks = [];
    req.on('data', c => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString()));
  });
}

async function admin(req, res) {
  const send = (status, obj) => {
    const body = JSON.stringify(obj);
    res.writeHead(status, {'Content-Type': 'application/json'});
    res.end(body);
  };
  const path = req.url.split('?')[0];
  const body = req.method === 'POST' ? JSON.parse((await readBody(req)) || '{}') : null;
  if (path === '/__admin/credentials' && req.method === 'POST') {
    credentials.set(body.access_key_id, {secret: body.secret_access_key, token: body.session_token});
    return send(200, {ok: true});
  }
  if (path === '/__admin/log' && req.method === 'GET') return send(200, requestLog);
  if (path === '/__admin/log' && req.method === 'DELETE') {
    requestLog.length = 0;
    return send(200, {ok: true});
  }
  if (path === '/__admin/faults' && req.method === 'POST') {
    faults = body.faults || [];
    return send(200, {ok: true});
  }
  return send(404, {error: 'no such admin endpoint'});
}

// ---------------------------------------------------------------- server

async function main() {
  const s3 = new S3rver({directory: process.env.S3_DATA_DIR, silent: true});
  await s3.configureBuckets();
  const inner = s3.callback();
  const server = http.createServer(async (req, res) => {
    const isAdmin = ADMIN && req.headers['x-admin-token'] === ADMIN;
    if (isAdmin && req.url.startsWith('/__admin/')) return admin(req, res);
    // <bucket>.localhost:port -> localhost:port/<bucket>/...
    const host = req.headers['host'] || '';
    const vhost = /^([a-z0-9.-]+)\.localhost(:\d+)?$/.exec(host);
    const entry = {
      method: req.method, url: req.url, host, range: req.headers['range'] || null,
      if_match: req.headers['if-match'] || null, signed: !!req.headers['authorization'],
      access_key: (/Credential=([^/]+)\//.exec(req.headers['authorization'] || '') || [])[1] || null,
      session_token: !!req.headers['x-amz-security-token'], admin: !!isAdmin, status: 0,
      time: Date.now() / 1000,
    };
    requestLog.push(entry);
    res.on('finish', () => { entry.status = res.statusCode; });
    res.on('close', () => { if (!entry.status) entry.status = -1; });
    if (!isAdmin) {
      const problem = verify(req);
      if (problem) {
        entry.status = problem[0];
        return xmlError(res, ...problem);
      }
      const f = takeFault(req);
      if (f) {
        entry.fault = true;
        applyFault(res, f);
      }
    }
    // s3rver judges by its own (weaker) rules: it sees an anonymous request.
    delete req.headers['authorization'];
    delete req.headers['x-admin-token'];
    if (vhost) {
      req.url = `/${vhost[1]}${req.url}`;
      req.headers['host'] = `localhost${vhost[2] || ''}`;
    }
    inner(req, res);
  });
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(JSON.stringify({port: server.address().port}) + '\n');
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch(err => {
  process.stderr.write(`s3_server.js: ${err.stack || err}\n`);
  process.exit(1);
});
