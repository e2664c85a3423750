'use strict';

/**
 * Loads weft's protos at run time: one protobufjs root (for reflection: the
 * converters walk its types) and, from it, the @grpc/proto-loader package
 * definition grpc-js makes its stubs from.
 *
 * Where the .proto files are:
 * - `weft/v1/*.proto`: `WEFT_PROTO_DIR`, else the repository's `proto/`
 *   (`../../proto` from this package);
 * - `google/rpc/{status,error_details}.proto` and `grpc/health/v1/health.proto`:
 *   `WEFT_PROTO_INCLUDE` (folders joined by ":"), else where Debian's
 *   golang-github-gogo-googleapis-dev and grpc-proto packages put them;
 * - `google/protobuf/*.proto`: bundled with protobufjs.
 *
 * @module weft/protos
 */

const fs = require('node:fs');
const path = require('node:path');
const protobuf = require('protobufjs');
const protoLoader = require('@grpc/proto-loader');

const DEFAULT_INCLUDE = [
  '/usr/share/gocode/src/github.com/gogo/googleapis',
  '/usr/share/grpc-proto',
];

const FILES = [
  'weft/v1/orchestrator.proto',
  'google/rpc/status.proto',
  'google/rpc/error_details.proto',
  'grpc/health/v1/health.proto',
];

/**
 * How decoded messages look: camelCase fields (as in proto3 JSON), int64 as
 * numbers (sequence numbers and counters stay far below 2^53), enums by
 * name, every field present (absent messages as null), and each oneof's
 * member named by a virtual field (`kind` of a Value or a PlanNode).
 */
const LOADER_OPTIONS = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

function protoDirs() {
  const weft = process.env.WEFT_PROTO_DIR || path.join(__dirname, '..', '..', '..', 'proto');
  const include = process.env.WEFT_PROTO_INCLUDE
    ? process.env.WEFT_PROTO_INCLUDE.split(':').filter(Boolean)
    : DEFAULT_INCLUDE;
  return [weft, ...include];
}

function load() {
  const dirs = protoDirs();
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    const found = dirs.map((dir) => path.join(dir, target)).find((file) => fs.existsSync(file));
    // Not found: protobufjs serves google/protobuf/*.proto from its bundle,
    // and reports any other file as missing.
    return found || target;
  };
  try {
    root.loadSync(FILES, { keepCase: LOADER_OPTIONS.keepCase });
    root.resolveAll();
  } catch (err) {
    throw new Error(
      `weft: cannot load the protos (${err.message}); looked in ${dirs.join(', ')}: ` +
        'set WEFT_PROTO_DIR to the repository\'s proto/ folder, and WEFT_PROTO_INCLUDE ' +
        '(folders joined by ":") to where google/rpc/*.proto and grpc/health/v1/health.proto ' +
        'are (Debian: apt-get install golang-github-gogo-googleapis-dev grpc-proto)',
      { cause: err },
    );
  }
  return { root, packageDefinition: protoLoader.fromJSON(root.toJSON(), LOADER_OPTIONS) };
}

let loaded = null;

/**
 * The loaded protos, loaded on first use.
 *
 * @returns {{root: protobuf.Root, packageDefinition: object}}
 */
function protos() {
  loaded = loaded || load();
  return loaded;
}

module.exports = { protos, LOADER_OPTIONS };
