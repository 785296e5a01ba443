import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import de.bwaldvogel.mongo.bson.BsonTimestamp;
import de.bwaldvogel.mongo.bson.Document;
import io.netty.channel.Channel;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.CountDownLatch;

/**
 * Runs mongo-java-server (in-memory backend, oplog enabled for change streams) on 127.0.0.1
 * for the Shards tests.
 *
 * <p>Usage: {@code java -cp classes:lib/* Launcher [--port N] [--exit-on-stdin-eof]}. Port 0
 * (the default) binds a free port. Once it accepts connections it prints one line
 * {@code LISTENING <port>} on stdout. It stops on SIGTERM/SIGINT and, with
 * {@code --exit-on-stdin-eof}, when its stdin closes (so it cannot outlive a test run whose
 * parent process was killed).
 *
 * <p>Two handshake-level adjustments make pymongo 4.x accept the server; neither changes what a
 * query, a write or a change stream returns:
 * <ul>
 *   <li>the reported version: mongo-java-server's MONGO_5_0 reports wire version 8 (MongoDB
 *       4.2's), which pymongo refuses; 9 (MongoDB 4.4) is the lowest it accepts;
 *   <li>{@code operationTime} on the reply that opens a change stream: pymongo requires it (or a
 *       {@code postBatchResumeToken}) when the first batch is empty, and the server sends neither.
 *       pymongo only uses it to resume after a network error when it holds no resume token; it is
 *       the current second with increment 0, so such a resume may deliver an event twice, never
 *       lose one ({@code startAtOperationTime} is inclusive). No {@code postBatchResumeToken} is
 *       added: the server does not have one, and the tests should see that.
 * </ul>
 */
public final class Launcher {
    private Launcher() {}

    private static final MongoVersion REPORTED_VERSION = new MongoVersion() {
        @Override
        public List<Integer> getVersionArray() {
            return List.of(4, 4, 0);
        }

        @Override
        public int getWireVersion() {
            return 9;
        }
    };

    /** The in-memory backend, with {@code operationTime} added to change-stream openings. */
    static final class Backend extends MemoryBackend {
        @Override
        public Document handleCommand(Channel channel, String databaseName, String command,
                                      Document query) {
            BsonTimestamp before = new BsonTimestamp(Instant.now(getClock()), 0);
            Document response = super.handleCommand(channel, databaseName, command, query);
            if (command.equalsIgnoreCase("aggregate") && opensChangeStream(query)
                    && response != null && !response.containsKey("operationTime")) {
                response.put("operationTime", before);
            }
            return response;
        }

        private static boolean opensChangeStream(Document query) {
            Object pipeline = query.get("pipeline");
            if (pipeline instanceof List<?> stages && !stages.isEmpty()
                    && stages.get(0) instanceof Document first) {
                return first.containsKey("$changeStream");
            }
            return false;
        }
    }

    public static void main(String[] args) throws InterruptedException {
        int port = 0;
        boolean exitOnStdinEof = false;
        boolean oplog = true;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--port" -> port = Integer.parseInt(args[++i]);
                case "--exit-on-stdin-eof" -> exitOnStdinEof = true;
                case "--no-oplog" -> oplog = false;
                default -> {
                    System.err.println("usage: Launcher [--port N] [--exit-on-stdin-eof] [--no-oplog]");
                    System.exit(2);
                }
            }
        }

        Backend backend = new Backend();
        backend.version(REPORTED_VERSION);
        MongoServer server = new MongoServer(backend);
        if (oplog) {
            server.enableOplog(); // change streams; without it the server has none
        }
        server.bind("127.0.0.1", port);
        InetSocketAddress address = server.getLocalAddress();

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdownNow();
            stopped.countDown();
        }, "launcher-shutdown"));

        if (exitOnStdinEof) {
            Thread watcher = new Thread(() -> {
                InputStream in = System.in;
                try {
                    while (in.read() != -1) {
                        // only end-of-file matters
                    }
                } catch (IOException ignored) {
                    // a broken stdin means the parent is gone
                }
                System.exit(0);
            }, "launcher-stdin-watch");
            watcher.setDaemon(true);
            watcher.start();
        }

        System.out.println("LISTENING " + address.getPort());
        System.out.flush();
        stopped.await();
    }
}
