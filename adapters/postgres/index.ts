export { PgStore, encodeKey, redact, type CommitResult, type Completion, type CompletionRecord, type PgStoreOptions } from './store.js';
