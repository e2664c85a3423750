'use strict';

/**
 * Plan builders. Each returns a `weft.v1.PlanNode` in its proto3 JSON form,
 * the same JSON as the README's and grpcurl's, with durations as strings
 * ("0.2s"):
 *
 *     parallel([
 *       call('sleep', {duration: '0.3s', value: {name: 'Ada'}}, {id: 'user'}),
 *       call('value', {value: {followers: 42}}, {id: 'stats'}),
 *     ])
 *
 * Every builder's last argument takes the options every node has: `id`,
 * `timeout` (seconds, or a string such as "2s") and `retry` (a RetryPolicy:
 * `{maxAttempts, initialBackoff, maxBackoff, multiplier, jitter,
 * retryableCodes}`, its durations as `timeout`'s).
 *
 * @module weft/plan
 */

const { formatDuration } = require('./values');

/**
 * @typedef {object} NodeOptions
 * @property {string} [id] The node's name in outcomes; a parallel whose
 *     children all have one has an object by id as its value.
 * @property {number|string} [timeout] Each attempt's time limit.
 * @property {number|string} [deadline] A limit on all attempts and the
 *     backoffs between them together, from the node's first start.
 * @property {object} [retry] A RetryPolicy.
 */

// `object` without its undefined fields.
function compact(object) {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined));
}

function optionalDuration(duration, path) {
  return duration === undefined ? undefined : formatDuration(duration, path);
}

function node(kind, body, { id, timeout, deadline, retry } = {}) {
  return compact({
    id,
    timeout: optionalDuration(timeout, 'timeout'),
    deadline: optionalDuration(deadline, 'deadline'),
    retry: retry && compact({
      ...retry,
      initialBackoff: optionalDuration(retry.initialBackoff, 'retry.initialBackoff'),
      maxBackoff: optionalDuration(retry.maxBackoff, 'retry.maxBackoff'),
    }),
    [kind]: compact(body),
  });
}

/**
 * A `call` node: runs a handler (`value`, `sleep`, `fail`, `hash`, `http`).
 *
 * @param {string} handler
 * @param {{[key: string]: import('./values').JsonValue}} [args] Plain values.
 * @param {NodeOptions} [options]
 */
function call(handler, args, options) {
  return node('call', { handler, args }, options);
}

/**
 * A `parallel` node: its children at once.
 *
 * @param {object[]} children
 * @param {NodeOptions & {join?: string, quorum?: number, maxConcurrency?: number}} [options]
 *     `join`: "JOIN_ALL" (fail fast, the default), "JOIN_ALL_SETTLED" or
 *     "JOIN_QUORUM" (with `quorum`).
 */
function parallel(children, { join, quorum, maxConcurrency, ...options } = {}) {
  return node('parallel', { children, join, quorum, maxConcurrency }, options);
}

/**
 * A `race` node: the first child to win decides, the others are cancelled.
 *
 * @param {object[]} children
 * @param {NodeOptions & {mode?: string, hedgeDelay?: number|string}} [options]
 *     `mode`: "RACE_MODE_FIRST_SUCCESS" (failover, the default) or
 *     "RACE_MODE_FIRST_COMPLETE"; `hedgeDelay`: child i starts i * hedgeDelay
 *     after the race.
 */
function race(children, { mode, hedgeDelay, ...options } = {}) {
  return node('race', { children, mode, hedgeDelay: optionalDuration(hedgeDelay, 'hedgeDelay') }, options);
}

/**
 * An `offload` node: its child's calls on a named thread pool.
 *
 * @param {object} child
 * @param {NodeOptions & {pool?: string}} [options] `pool`: "default" when absent.
 */
function offload(child, { pool, ...options } = {}) {
  return node('offload', { pool, child }, options);
}

/**
 * A `sequence` node: its children one after another; its value is the list
 * of theirs.
 *
 * @param {object[]} children
 * @param {NodeOptions} [options]
 */
function sequence(children, options) {
  return node('sequence', { children }, options);
}

/**
 * A `lazy` node: resolves a lazy value.
 *
 * @param {string} name "lazyValues/ID" or the bare ID.
 * @param {NodeOptions} [options]
 */
function lazy(name, options) {
  return node('lazy', { name: lazyValueName(name) }, options);
}

function prefixed(prefix) {
  return (name) => {
    if (typeof name !== 'string' || name === '') {
      throw new TypeError(`expected a name such as "${prefix}ID" or an ID, got ${String(name)}`);
    }
    return name.startsWith(prefix) ? name : prefix + name;
  };
}

/** "tasks/ID" from "tasks/ID" or "ID". */
const taskName = prefixed('tasks/');
/** "lazyValues/ID" from "lazyValues/ID" or "ID". */
const lazyValueName = prefixed('lazyValues/');

/**
 * Values for a call's args that earlier steps of a sequence make; weftd
 * fills them in when the call starts:
 *
 *     sequence([
 *       call('http', {url: 'http://api/users/42'}, {id: 'user'}),
 *       call('http', {url: format('http://api/users/{user.body.id}/posts')}),
 *     ])
 *
 * `ref(path)`: a node's value by its id, walked by `.field` and `[index]`
 * steps ("user.body.name"). `format(text)`: a string with `{ref}` slots (a
 * string or a number each; `{{` and `}}` write braces). `literal(value)`:
 * `value` as it is, even an object with a "$ref" key.
 */
/**
 * A `map` node: `child` once per item of `items` (a list, or `ref(...)`
 * naming one), joined like a parallel's children; inside `child`,
 * `ref('$item')`, `ref('$item.field')` and `ref('$index')`, or the name
 * `as` gives the item.
 *
 * @param {object[]|object} items
 * @param {object} child
 * @param {NodeOptions & {join?: string, quorum?: number, maxConcurrency?: number, as?: string}} [options]
 */
function map(items, child, { join, quorum, maxConcurrency, as, ...options } = {}) {
  return node('map', { items, child, join, quorum, maxConcurrency, as }, options);
}

function ref(path) {
  return { $ref: path };
}

function format(text) {
  return { $format: text };
}

function literal(value) {
  return { $literal: value };
}

module.exports = {
  call, parallel, race, offload, sequence, lazy, map, taskName, lazyValueName, ref, format,
  literal,
};
