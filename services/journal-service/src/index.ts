// @vecraft/journal-service: the journal as a service. Other services never import this
// package; they talk to it through JournalService in proto/. Tests and the standalone
// process use start().
export { start } from "./service.js";
export type { JournalDeps, RunningJournal } from "./service.js";
export { journalConfigSchema, loadJournalConfig } from "./config.js";
export type { JournalConfig } from "./config.js";
