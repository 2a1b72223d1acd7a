export { PgStore, encodeKey, type CommitResult, type Completion, type CompletionRecord, type PgStoreOptions } from './store.js';
