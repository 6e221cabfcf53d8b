// Every command of `vecraft`, in the order `vecraft --help` lists them. A new command
// (e.g. `vecraft serve`, `vecraft cluster ...`) is a module exporting CommandSpecs plus
// one line here.
import type { CommandSpec } from "../registry.js";
import { clusterCommands } from "./cluster.js";
import { collectionCommands } from "./collections.js";
import { importCommands } from "./import.js";
import { journalCommands } from "./journal.js";
import { recordCommands } from "./records.js";
import { searchCommands } from "./search.js";
import { serveCommands } from "./serve.js";
import { statusCommands } from "./status.js";

export const DEFAULT_COMMANDS: readonly CommandSpec[] = [
  ...collectionCommands,
  ...importCommands,
  ...searchCommands,
  ...recordCommands,
  ...journalCommands,
  ...statusCommands,
  ...clusterCommands,
  ...serveCommands,
];
