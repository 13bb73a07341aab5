'use strict'

/** Every stable error code of the store, with the class that carries it. */
const CODES = {
  not_found: 'NotFoundError',
  already_exists: 'AlreadyExistsError',
  conflict: 'ConflictError',
  invalid_input: 'InvalidInputError',
  limit_exceeded: 'LimitExceededError',
  cursor_expired: 'CursorExpiredError',
  unavailable: 'UnavailableError',
  timeout: 'TimeoutError',
  backend: 'BackendError',
  internal: 'InternalError',
}

/** Base class of every error the store reports; `.code` is the stable code. */
class SessionStoreError extends Error {
  constructor(code, message, options) {
    super(message, options)
    this.code = code
  }

  get name() {
    return this.constructor.name
  }
}

const classes = {}
for (const [code, name] of Object.entries(CODES)) {
  // One named subclass per code, e.g. `class NotFoundError extends SessionStoreError`.
  const cls = {
    [name]: class extends SessionStoreError {
      constructor(message, options) {
        super(code, message, options)
      }
    },
  }[name]
  classes[code] = cls
}

const PREFIX = new RegExp(`^(${Object.keys(CODES).join('|')}): ([\\s\\S]*)$`)

/**
 * Turn an error thrown by the native layer into the package's error classes:
 * the native message starts with the stable code (`"not_found: …"`). A value
 * of the wrong JS type that reached the native layer becomes a `TypeError`.
 */
function fromNative(err) {
  if (!(err instanceof Error) || err instanceof SessionStoreError || err instanceof TypeError) return err
  const m = PREFIX.exec(err.message)
  if (m) return new classes[m[1]](m[2], { cause: err })
  if (
    err.code === 'InvalidArg' ||
    err.code === 'StringExpected' ||
    err.code === 'NumberExpected' ||
    err.code === 'ObjectExpected' ||
    err.code === 'BooleanExpected' ||
    err.code === 'ArrayExpected' ||
    err.code === 'FunctionExpected'
  ) {
    return new TypeError(err.message, { cause: err })
  }
  return new classes.internal(err.message, { cause: err })
}

/** Run a native async call, translating its error (also a synchronous throw). */
async function call(fn) {
  try {
    return await fn()
  } catch (err) {
    throw fromNative(err)
  }
}

/** Run a synchronous native call, translating its error. */
function callSync(fn) {
  try {
    return fn()
  } catch (err) {
    throw fromNative(err)
  }
}

module.exports = {
  SessionStoreError,
  NotFoundError: classes.not_found,
  AlreadyExistsError: classes.already_exists,
  ConflictError: classes.conflict,
  InvalidInputError: classes.invalid_input,
  LimitExceededError: classes.limit_exceeded,
  CursorExpiredError: classes.cursor_expired,
  UnavailableError: classes.unavailable,
  TimeoutError: classes.timeout,
  BackendError: classes.backend,
  InternalError: classes.internal,
  ERROR_CODES: Object.freeze(Object.keys(CODES)),
  errorClassFor: (code) => classes[code],
  fromNative,
  call,
  callSync,
}
