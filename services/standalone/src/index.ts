// @vecraft/standalone: the composition root of standalone mode. Not a service: it starts
// the services (each through its own start()) and wires their URLs together.
export { startStandalone, dataLayout } from "./standalone.js";
export type { RunningStandalone } from "./standalone.js";
export { loadStandaloneConfig, standaloneConfigSchema } from "./config.js";
export type { StandaloneConfig } from "./config.js";
