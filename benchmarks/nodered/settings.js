// Node-RED settings for the benchmark: run.py sets every value through the environment.
// The editor and admin API are off (nothing to click at, nothing to serve), and the
// PostgreSQL client comes from the same install folder as Node-RED itself.
const path = require("path");

module.exports = {
    flowFile: process.env.NR_FLOW_FILE,
    userDir: process.env.NR_USER_DIR,
    uiHost: "127.0.0.1",
    uiPort: Number(process.env.NR_HTTP_PORT),
    disableEditor: true,
    httpAdminRoot: false,
    httpNodeRoot: false,
    credentialSecret: false,
    logging: { console: { level: "info", metrics: false, audit: false } },
    functionGlobalContext: {
        pg: require(path.join(process.env.NR_MODULES, "pg")),
    },
    contextStorage: { default: { module: "memory" } },
};
