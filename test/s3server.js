#!/usr/bin/env node
// s3server: the S3 API server of the integration tests (test/integration/test_s3.c).
// It runs s3rver (npm) on loopback with its objects in a directory and adds the two
// checks of real S3 that s3rver 3 leaves out, so that signing bugs cannot pass:
//   * the AWS Signature Version 4 of every signed request is recomputed with the
//     account's secret (s3rver checks only the access key id of V4 requests):
//     SignatureDoesNotMatch, and x-amz-* headers left unsigned are refused;
//   * with --region, a signature scoped to another region is refused with
//     AuthorizationHeaderMalformed, as AWS does.
// Every request is logged as "request <METHOD> <target>" on stdout.
// Usage: node test/s3server.js --port P --directory D [--region R] [--bucket B]...
// Credentials: s3rver's account S3RVER / S3RVER. Virtual-host addressing works for
// hosts "<bucket>.s3.localhost".
'use strict';

const crypto = require('crypto');
const S3rver = require('s3rver');
const S3Error = require('s3rver/lib/models/error');
const AWSAccount = require('s3rver/lib/models/account');

function parseArgs(argv) {
  const o = { port: 4568, directory: null, region: null, buckets: [] };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === '--port') o.port = Number(v);
    else if (k === '--directory') o.directory = v;
    else if (k === '--region') o.region = v;
    else if (k === '--bucket') o.buckets.push({ name: v, configs: [] });
    else throw new Error(`unknown option ${k}`);
  }
  if (!o.directory) throw new Error('--directory is required');
  return o;
}

// RFC 3986 encoding, as SigV4 canonicalises query names and values.
function enc(s) {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    c => '%' + c.charCodeAt(0).toString(16).toUpperCase(),
  );
}

function canonicalQuery(query) {
  if (!query) return '';
  return query
    .split('&')
    .map(p => {
      const i = p.indexOf('=');
      const k = i < 0 ? p : p.slice(0, i);
      const v = i < 0 ? '' : p.slice(i + 1);
      return [enc(decodeURIComponent(k)), enc(decodeURIComponent(v))];
    })
    .sort((a, b) => (a[0] === b[0] ? (a[1] < b[1] ? -1 : 1) : a[0] < b[0] ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

const hmac = (key, data) => crypto.createHmac('sha256', key).update(data).digest();
const sha256 = data => crypto.createHash('sha256').update(data).digest('hex');

function expectedSignature(ctx, secret, date, region, names) {
  const url = ctx.originalUrl;
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q + 1);
  const headers = names
    .map(n => `${n}:${String(ctx.req.headers[n] || '').trim().replace(/\s+/g, ' ')}\n`)
    .join('');
  const payload = ctx.get('x-amz-content-sha256') || sha256('');
  const creq = [ctx.method, path, canonicalQuery(query), headers, names.join(';'), payload].join(
    '\n',
  );
  const scope = `${date}/${region}/s3/aws4_request`;
  const sts = ['AWS4-HMAC-SHA256', ctx.get('x-amz-date'), scope, sha256(creq)].join('\n');
  let key = hmac('AWS4' + secret, date);
  for (const part of [region, 's3', 'aws4_request']) key = hmac(key, part);
  return hmac(key, sts).toString('hex');
}

function verifySigV4(region) {
  return async function sigv4(ctx, next) {
    console.log(`request ${ctx.method} ${ctx.originalUrl}`); // the tests count these
    const auth = ctx.get('authorization');
    if (!auth.startsWith('AWS4-HMAC-SHA256 ')) return next();
    const m =
      /Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})/.exec(
        auth,
      );
    if (!m) throw new S3Error('AuthorizationHeaderMalformed', 'The authorization header is malformed.');
    const [, akid, date, scopeRegion, signed, signature] = m;
    const account = AWSAccount.registry.get(akid);
    if (!account) {
      throw new S3Error(
        'InvalidAccessKeyId',
        'The AWS Access Key Id you provided does not exist in our records.',
        { AWSAccessKeyId: akid },
      );
    }
    if (region && scopeRegion !== region) {
      throw new S3Error(
        'AuthorizationHeaderMalformed',
        `The authorization header is malformed; the region '${scopeRegion}' is wrong; expecting '${region}'`,
        { Region: region },
      );
    }
    const names = signed.split(';');
    const unsigned = Object.keys(ctx.req.headers).filter(
      h => h.startsWith('x-amz-') && !names.includes(h),
    );
    if (unsigned.length) {
      throw new S3Error('AccessDenied', 'There were headers present in the request which were not signed', {
        HeadersNotSigned: unsigned.join(', '),
      });
    }
    const secret = account.accessKeys.get(akid);
    if (expectedSignature(ctx, secret, date, scopeRegion, names) !== signature) {
      throw new S3Error(
        'SignatureDoesNotMatch',
        'The request signature we calculated does not match the signature you provided. ' +
          'Check your key and signing method.',
        { AWSAccessKeyId: akid },
      );
    }
    return next();
  };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const server = new S3rver({
    address: '127.0.0.1',
    port: o.port,
    directory: o.directory,
    serviceEndpoint: 'localhost',
    configureBuckets: o.buckets,
    silent: false,
  });
  // before the router (the last middleware), after the logger and the XML encoder
  server.middleware.splice(server.middleware.length - 1, 0, verifySigV4(o.region));
  const addr = await server.run();
  console.log(`s3server listening on ${addr.address}:${addr.port}`);
  const stop = () => server.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch(err => {
  console.error(err);
  process.exit(1);
});
