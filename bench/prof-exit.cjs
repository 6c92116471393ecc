// Preloaded into a server profiled with --cpu-prof: SIGTERM exits normally, so the profile is written.
process.on('SIGTERM', () => process.exit(0));
