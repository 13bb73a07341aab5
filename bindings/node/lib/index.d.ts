// Types of the `mcp-session-store` package (hand-written; the native layer's
// generated types are in ../index.d.ts).
import type {
  CleanupInfo,
  EventInfo,
  EventPage,
  EventPosition,
  SessionInfo,
  SessionPage,
  StateEntryInfo,
  SweeperStatsInfo,
} from '../index.js'

export type { CleanupInfo, EventInfo, EventPage, EventPosition, SessionInfo, SessionPage, StateEntryInfo, SweeperStatsInfo }

/** A JSON-compatible JS value (what the store keeps). */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue | undefined }

export interface OpenOptions {
  /** Sliding session TTL: milliseconds, or a duration string ("30m", "90s", "2h"). */
  ttlMs?: number | string
  /** Alias of `ttlMs`. */
  ttl?: number | string
  maxEventsPerSession?: number
  maxPayloadBytes?: number
  maxSessions?: number
  pollIntervalMs?: number
}

export interface CreateSessionOptions {
  id?: string
  metadata?: Record<string, unknown>
  ttlMs?: number
}

/** A wire event id (`Last-Event-ID`) or a position; `seq` 0 or absent is the stream's start. */
export type Cursor = string | { streamId: string; seq?: number }

export type ErrorCode =
  | 'not_found'
  | 'already_exists'
  | 'conflict'
  | 'invalid_input'
  | 'limit_exceeded'
  | 'cursor_expired'
  | 'unavailable'
  | 'timeout'
  | 'backend'
  | 'internal'

export class SessionStoreError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: ErrorOptions)
}
export class NotFoundError extends SessionStoreError {
  readonly code: 'not_found'
  constructor(message: string, options?: ErrorOptions)
}
export class AlreadyExistsError extends SessionStoreError {
  readonly code: 'already_exists'
  constructor(message: string, options?: ErrorOptions)
}
export class ConflictError extends SessionStoreError {
  readonly code: 'conflict'
  constructor(message: string, options?: ErrorOptions)
}
export class InvalidInputError extends SessionStoreError {
  readonly code: 'invalid_input'
  constructor(message: string, options?: ErrorOptions)
}
export class LimitExceededError extends SessionStoreError {
  readonly code: 'limit_exceeded'
  constructor(message: string, options?: ErrorOptions)
}
export class CursorExpiredError extends SessionStoreError {
  readonly code: 'cursor_expired'
  constructor(message: string, options?: ErrorOptions)
}
export class UnavailableError extends SessionStoreError {
  readonly code: 'unavailable'
  constructor(message: string, options?: ErrorOptions)
}
export class TimeoutError extends SessionStoreError {
  readonly code: 'timeout'
  constructor(message: string, options?: ErrorOptions)
}
export class BackendError extends SessionStoreError {
  readonly code: 'backend'
  constructor(message: string, options?: ErrorOptions)
}
export class InternalError extends SessionStoreError {
  readonly code: 'internal'
  constructor(message: string, options?: ErrorOptions)
}
export const ERROR_CODES: readonly ErrorCode[]

export class Store {
  private constructor(handle: never)
  /** Open `memory://`, `sqlite://PATH`, …; URL query parameters win over `options`. */
  static open(url: string, options?: OpenOptions): Promise<Store>
  /** `"memory"`, `"sqlite"`, … */
  readonly backend: string
  close(): Promise<void>

  createSession(options?: CreateSessionOptions): Promise<SessionInfo>
  getSession(sessionId: string): Promise<SessionInfo | null>
  updateSession(sessionId: string, patch: Record<string, unknown>): Promise<SessionInfo>
  touchSession(sessionId: string): Promise<SessionInfo>
  deleteSession(sessionId: string): Promise<boolean>
  /** One page of live sessions (`limit` default: 100). */
  listSessions(options?: { after?: string; limit?: number }): Promise<SessionPage>
  /** Every live session, read in pages of `pageSize` (default: 100). */
  sessions(options?: { after?: string; pageSize?: number }): AsyncGenerator<SessionInfo, void, undefined>
  countSessions(): Promise<number>

  getState(sessionId: string, key: string): Promise<StateEntryInfo | null>
  setState(sessionId: string, key: string, value: unknown): Promise<number>
  /** Compare-and-set; `expectedVersion` null: only if absent. A mismatch rejects with ConflictError. */
  setStateIfVersion(sessionId: string, key: string, value: unknown, expectedVersion: number | null): Promise<number>
  updateState<T = unknown>(
    sessionId: string,
    key: string,
    fn: (current: T | undefined) => T | Promise<T>,
  ): Promise<{ key: string; value: T; version: number }>
  deleteState(sessionId: string, key: string): Promise<boolean>
  stateKeys(sessionId: string): Promise<string[]>
  stateAll(sessionId: string): Promise<StateEntryInfo[]>

  appendEvent(
    sessionId: string,
    streamId: string,
    data: unknown,
    options?: { eventType?: string; retryMs?: number },
  ): Promise<EventInfo>
  appendPrimingEvent(sessionId: string, streamId: string, options?: { retryMs?: number }): Promise<EventInfo>
  /** One page of the cursor's stream after it (`limit` default: 100); `next` is set while more follow. */
  eventsAfter(sessionId: string, cursor: Cursor, options?: { limit?: number }): Promise<EventPage>
  /** `eventsAfter` for a `Last-Event-ID` (`limit` default: 100). */
  replay(sessionId: string, lastEventId: string, options?: { limit?: number }): Promise<EventPage>
  /** Every event of the cursor's stream after it, read in pages of `pageSize` (default: 100). */
  events(sessionId: string, cursor: Cursor, options?: { pageSize?: number }): AsyncGenerator<EventInfo, void, undefined>
  subscribe(sessionId: string, cursor: Cursor): Promise<Subscription>

  cleanupExpired(): Promise<CleanupInfo>
  startSweeper(intervalMs: number): Promise<Sweeper>

  /** An `EventStore` for `@modelcontextprotocol/sdk`, scoped to one session. */
  eventStore(sessionId: string): SessionEventStore
  /** Options for one `StreamableHTTPServerTransport` (one session). */
  transportOptions<O extends object = {}>(options?: TransportOptionsInput & O): TransportOptions & Omit<O, keyof TransportOptionsInput>
  /** A transport for a session the store knows (after a restart), already initialized; null if unknown. */
  restoreTransport<T = import('@modelcontextprotocol/sdk/server/streamableHttp.js').StreamableHTTPServerTransport>(
    sessionId: string,
    options?: Record<string, unknown> & { Transport?: new (options: any) => T },
  ): Promise<T | null>
}

export interface TransportOptionsInput {
  /** Use this id instead of minting one. */
  sessionId?: string
  metadata?: Record<string, unknown>
  ttlMs?: number
  onsessioninitialized?: (sessionId: string) => void | Promise<void>
  onsessionclosed?: (sessionId: string) => void | Promise<void>
}

export interface TransportOptions {
  sessionIdGenerator: () => string
  eventStore: SessionEventStore
  onsessioninitialized: (sessionId: string) => Promise<void>
  onsessionclosed: (sessionId: string) => Promise<void>
}

export class Subscription implements AsyncIterable<EventInfo> {
  private constructor(handle: never)
  /** The next event (replayed, then live); null once closed. */
  next(): Promise<EventInfo | null>
  close(): void
  [Symbol.asyncIterator](): AsyncGenerator<EventInfo, void, undefined>
}

export class Sweeper {
  private constructor(handle: never)
  readonly stats: SweeperStatsInfo
  stop(): void
}

/** The SDK's `EventStore` interface, scoped to one session. */
export class SessionEventStore {
  constructor(store: Store, sessionId: string)
  readonly store: Store
  readonly sessionId: string
  storeEvent(streamId: string, message: unknown): Promise<string>
  getStreamIdForEventId(eventId: string): Promise<string | undefined>
  replayEventsAfter(
    lastEventId: string,
    options: { send: (eventId: string, message: any) => Promise<void> },
  ): Promise<string>
}

export function formatEventId(sessionId: string, streamId: string, seq: number): string
export function parseEventId(wireId: string, sessionId: string): EventPosition
export function newSessionId(): string
export function coreVersion(): string
