// Preloaded (node --require) into every server the bench starts in a child process: answers
// {type:'cpu'} over IPC with the process's own CPU accounting, so children (a JVM) never count.
if (process.send) {
  process.on('message', (msg) => {
    if (msg && msg.type === 'cpu') process.send({ type: 'cpu', id: msg.id, usage: process.cpuUsage() });
  });
}
