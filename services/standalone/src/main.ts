#!/usr/bin/env node
// Composition root: config -> deps -> start -> signals (see runService in @vecraft/common).
import { runService } from "@vecraft/common";
import { standaloneConfigSchema } from "./config.js";
import { startStandalone } from "./standalone.js";

runService({
  title: "vecraft standalone (pnpm start)",
  name: "vecraft",
  schema: standaloneConfigSchema,
  start: startStandalone,
  announce: (running, config) => `Vecraft standalone serving on ${running.url} (data in ${config.dataDir}); Ctrl-C to stop`,
});
