package hubmetrics.kstreams;

import java.util.Map;
import org.apache.kafka.streams.state.RocksDBConfigSetter;
import org.apache.kafka.streams.state.internals.BlockBasedTableConfigWithAccessibleCache;
import org.rocksdb.Cache;
import org.rocksdb.LRUCache;
import org.rocksdb.Options;
import org.rocksdb.WriteBufferManager;

/**
 * Bounds the memory of every RocksDB store of this JVM (--rocksdb_memory_mb), the way the Kafka
 * Streams memory-management guide does it: one LRU block cache shared by all stores and
 * segments, which also holds the memtables (charged through one WriteBufferManager) and the
 * index and filter blocks. Without it each store (and each window-store segment) has its own
 * 50 MB block cache and up to 3 memtables of 16 MB.
 */
public final class BoundedRocksDb implements RocksDBConfigSetter {
  static final String MEMORY_MB_CONFIG = "hubmetrics.rocksdb.memory.mb";
  // Memtables may take half of the bound; index and filter blocks have a tenth reserved.
  private static final double MEMTABLE_SHARE = 0.5;
  private static final double INDEX_FILTER_SHARE = 0.1;

  private static Cache cache;
  private static WriteBufferManager writeBufferManager;
  private static long memtableBytes;

  private static synchronized void init(long totalBytes) {
    if (cache != null) return;
    cache = new LRUCache(totalBytes, -1, false, INDEX_FILTER_SHARE);
    memtableBytes = (long) (totalBytes * MEMTABLE_SHARE);
    writeBufferManager = new WriteBufferManager(memtableBytes, cache);
  }

  @Override
  public void setConfig(String storeName, Options options, Map<String, Object> configs) {
    final Object mb = configs.get(MEMORY_MB_CONFIG);
    final long total = Long.parseLong(String.valueOf(mb)) * 1024L * 1024L;
    init(total);
    final BlockBasedTableConfigWithAccessibleCache table =
        (BlockBasedTableConfigWithAccessibleCache) options.tableFormatConfig();
    table.setBlockCache(cache);
    table.setCacheIndexAndFilterBlocks(true);
    table.setCacheIndexAndFilterBlocksWithHighPriority(true);
    table.setPinTopLevelIndexAndFilter(true);
    options.setWriteBufferManager(writeBufferManager);
    // Memtables no larger than a quarter of their share, at most 2 per store.
    options.setWriteBufferSize(Math.max(1L << 20, Math.min(16L << 20, memtableBytes / 4)));
    options.setMaxWriteBufferNumber(2);
    options.setTableFormatConfig(table);
  }

  @Override
  public void close(String storeName, Options options) {
    // The cache and the write buffer manager are shared by every store: never closed here.
  }
}
