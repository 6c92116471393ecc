import java.io.InputStream;
import java.lang.reflect.Field;
import java.util.ArrayList;
import java.util.List;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

/**
 * DynamoDB Local on 127.0.0.1 only, ended with its parent (lambda/entry/dynamodb-local/index.ts runs it).
 *
 * DynamoDB Local 3.x has no bind-address option: its Jetty server listens on every interface.
 * This builds the server as DynamoDB Local's own ServerRunner does, sets the connector's host
 * (and port, 0 = any free one) before Jetty starts, then prints one line the parent reads:
 * "ITAPI_DYNAMODB_LOCAL_PORT=<port>". It exits when its standard input closes, which happens
 * whatever ended the parent (SIGKILL included). Nothing compiled is shipped: index.ts compiles this
 * file once per Java with the runtime's own compiler (module jdk.compiler) into a cache folder.
 * Usage: java -cp DynamoDBLocal.jar:CACHE_FOLDER DynamoDBLocalOnLoopback PORT [DynamoDB Local options]
 */
public class DynamoDBLocalOnLoopback {
    private static final String HOST = "127.0.0.1";

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: DynamoDBLocalOnLoopback PORT [DynamoDB Local options]");
            System.exit(64);
        }
        int port = Integer.parseInt(args[0]);
        List<String> options = new ArrayList<>(List.of(args).subList(1, args.length));
        // DynamoDB Local wants a port between 1 and 65535; the connector gets the real one (0 included) below.
        options.add("-port");
        options.add("8000");
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(options.toArray(new String[0]));
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server jetty = (Server) field.get(proxy);
        ServerConnector connector = null;
        for (Connector c : jetty.getConnectors()) {
            connector = (ServerConnector) c;
            connector.setHost(HOST);
            connector.setPort(port);
        }
        if (connector == null) throw new IllegalStateException("DynamoDB Local's server has no connector");
        watchParent(proxy);
        try {
            proxy.safeStart();
        } catch (Exception e) {
            System.err.println("DynamoDB Local could not listen on " + HOST + ":" + port + ": " + e.getMessage());
            System.exit(2);
        }
        System.out.println("ITAPI_DYNAMODB_LOCAL_PORT=" + connector.getLocalPort());
        System.out.flush();
        proxy.join();
    }

    /** Standard input is the parent's pipe: end of file means the parent is gone, however it ended. */
    private static void watchParent(DynamoDBProxyServer proxy) {
        Thread watcher = new Thread(() -> {
            try {
                InputStream in = System.in;
                byte[] buffer = new byte[256];
                while (in.read(buffer) >= 0) {
                    // The parent writes nothing; anything it did is ignored.
                }
            } catch (Exception ignored) {
                // A broken pipe is the same news as end of file.
            }
            // Should an exit hook hang, end anyway: the parent is gone.
            Thread deadline = new Thread(() -> {
                try {
                    Thread.sleep(20_000);
                } catch (InterruptedException ignored) {
                    // Halting now is as good.
                }
                Runtime.getRuntime().halt(0);
            }, "exit-deadline");
            deadline.setDaemon(true);
            deadline.start();
            try {
                proxy.stop();
            } catch (Exception ignored) {
                // Exiting regardless.
            }
            // A normal exit (not halt): the JVM writes its class-data archive when asked to (-XX:ArchiveClassesAtExit).
            System.exit(0);
        }, "parent-watch");
        watcher.setDaemon(true);
        watcher.start();
    }
}
