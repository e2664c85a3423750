'use strict';

/**
 * weft's RPC errors, with the google.rpc details weftd sends in the
 * `grpc-status-details-bin` trailer decoded (docs/errors.md).
 *
 * @module weft/errors
 */

const grpc = require('@grpc/grpc-js');
const protobuf = require('protobufjs');
const { protos, LOADER_OPTIONS } = require('./protos');
const { fromMessage } = require('./values');

/**
 * A failed call: its gRPC status and what weftd said about it.
 *
 * A status without an `ErrorInfo` (`reason` null) is one gRPC made itself:
 * an unreachable server, a deadline that passed before weftd answered, a
 * message over the size limit.
 */
class WeftError extends Error {
  /**
   * @param {object} fields
   * @param {number} fields.code The gRPC status code (`grpc.status`).
   * @param {string} fields.details The status message, for people.
   * @param {object[]} [fields.detailMessages] The decoded google.rpc details,
   *     each with its `type` name (`"google.rpc.ErrorInfo"`).
   * @param {object} [options] `{cause}`: the grpc-js error.
   */
  constructor({ code, details, detailMessages = [] }, options) {
    const codeName = grpc.status[code] ?? String(code);
    super(`${codeName}: ${details}`, options);
    const find = (type) => detailMessages.find((detail) => detail.type === type);
    const info = find('google.rpc.ErrorInfo');
    const badRequest = find('google.rpc.BadRequest');
    const retry = find('google.rpc.RetryInfo');
    const resource = find('google.rpc.ResourceInfo');
    this.name = 'WeftError';
    /** @type {number} The gRPC status code, e.g. 3. */
    this.code = code;
    /** @type {string} Its name, e.g. "INVALID_ARGUMENT". */
    this.codeName = codeName;
    /** @type {string} The status message. */
    this.details = details;
    /** @type {string|null} ErrorInfo.reason, e.g. "UNKNOWN_HANDLER"; null without ErrorInfo. */
    this.reason = info ? info.reason : null;
    /** @type {string|null} ErrorInfo.domain: "weft" for weftd's errors. */
    this.domain = info ? info.domain : null;
    /** @type {{[key: string]: string}} ErrorInfo.metadata, e.g. {handler: "slep"}. */
    this.metadata = info ? info.metadata : {};
    /** @type {{field: string, description: string}[]} BadRequest's violations. */
    this.fieldViolations = badRequest
      ? badRequest.fieldViolations.map(({ field, description }) => ({ field, description }))
      : [];
    /** @type {number|null} RetryInfo.retryDelay in seconds: wait this long before retrying. */
    this.retryDelay = retry && retry.retryDelay !== null ? retry.retryDelay : null;
    /** @type {{type: string, name: string}|null} ResourceInfo: the task or lazy value meant. */
    this.resource = resource ? { type: resource.resourceType, name: resource.resourceName } : null;
    /** @type {object[]} Every decoded detail, with its `type`. */
    this.detailMessages = detailMessages;
  }

  /**
   * The WeftError of a grpc-js error, its details decoded.
   *
   * @param {import('@grpc/grpc-js').ServiceError} err
   * @returns {WeftError}
   */
  static fromServiceError(err) {
    return new WeftError(
      { code: err.code, details: err.details, detailMessages: decodeDetails(err.metadata) },
      { cause: err },
    );
  }
}

// The google.rpc.Status in the trailer, its Any details decoded by type URL;
// a detail of a type these protos do not have is left out.
function decodeDetails(metadata) {
  const [trailer] = metadata ? metadata.get('grpc-status-details-bin') : [];
  if (!trailer) return [];
  const { root } = protos();
  const decode = (type, bytes) => fromMessage(type, type.toObject(type.decode(bytes), LOADER_OPTIONS));
  const status = root.lookupType('google.rpc.Status').decode(trailer);
  return status.details.flatMap((any) => {
    const typeName = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
    const type = root.lookup(typeName, protobuf.Type);
    return type ? [{ type: typeName, ...decode(type, any.value) }] : [];
  });
}

module.exports = { WeftError };
