// ngx_http_rate_guard_module: one shared rate limit per client across a fleet
// of nginx servers, kept in Redis. This file is the nginx side only: the
// directives, the PREACCESS handler that suspends a request while its check is
// in Redis, the header filter and the variables. Decisions are made in src/.

#include <cstring>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "config/redis_config.h"
#include "config/zone_config.h"
#include <ctime>

#include "limiter/block_cache.h"
#include "limiter/limiter.h"
#include "limiter/metrics.h"
#include "ngx.hpp"
#include "ngx_event_loop.hpp"
#include "redis/cluster_slots_reply.h"
#include "redis/redis_checker.h"
#include "util/log_escape.h"
#include "util/log_throttle.h"

extern ngx_module_t ngx_http_rate_guard_module;

namespace {

using rate_guard::RedisChecker;
using rate_guard::Verdict;

// One `rate_guard_zone`.
struct Zone {
  ngx_str_t name;
  ngx_http_complex_value_t* key;
  rate_guard::ZoneConfig* config;
  ngx_http_complex_value_t* rate;  // `rate=$var`, or nullptr
  rate_guard::RequestLimits limits;  // when the rate is not a variable
  uint64_t cache_id;                 // block_cache_zone_id(*config, limits)
  size_t index;                      // in MainConf::zones and in the metrics
};

// One `rate_guard zone=NAME [cost=N] [count=before|after] [if=$var]` line: a
// zone applied in a location. The zone is found once the whole http block is
// read, so zones may be defined after the lines that apply them.
struct ZoneApplication {
  ngx_str_t zone_name;
  Zone* zone;
  uint64_t cost;
  ngx_http_complex_value_t* cost_value;  // `cost=$var`, or nullptr
  // `count=after`: checked before the request (cost 0: is any quota left?),
  // counted in the log phase with the cost evaluated then, if `if_value`
  // (nullptr: always) is neither empty nor "0".
  bool count_after;
  ngx_http_complex_value_t* if_value;
  ngx_str_t file;
  ngx_uint_t line;
};

struct MainConf {
  rate_guard::RedisConfig* redis;
  NgxRedisTls redis_tls;  // with tls=on
  ngx_array_t zones;  // of Zone
  bool used;          // some location applies a zone
  bool counts_after;  // some location applies a zone with count=after
  size_t block_cache_size;  // 0: off
  ngx_shm_zone_t* block_cache_zone;
  ngx_shm_zone_t* metrics_zone;
};

// The shared memory of the blocked-key cache and the lease table: their
// sizes, then the cache, then the table.
struct SharedTablesRegion {
  size_t cache_bytes;
  size_t lease_bytes;
  alignas(8) unsigned char memory[1];
};

// Leases go to busy keys only: a few per server and zone.
constexpr size_t kLeaseTableEntries = 1024;
size_t lease_table_bytes() {
  return ngx_align(64 + kLeaseTableEntries * rate_guard::LeaseTable::entry_size(), 8);
}

// How often each worker hands back the unused units of ended leases.
constexpr uint64_t kLeaseReturnIntervalMs = 10;

enum FailPolicy : ngx_uint_t { kFailOpen = 0, kFailClosed = 1 };
enum HeadersMode : ngx_uint_t { kHeadersOff = 0, kHeadersOn = 1, kHeadersDraft = 2 };

struct LocConf {
  ngx_array_t* applied;  // of ZoneApplication; NGX_CONF_UNSET_PTR: inherit; nullptr: `rate_guard off`
  ngx_uint_t status;
  ngx_uint_t fail;
  ngx_uint_t headers;
  ngx_flag_t dry_run;
  ngx_uint_t log_level;
};

// Per-request state. It lives in the request pool; a pool cleanup cancels a
// check still in flight, so a late reply never touches a freed request, and
// lets an internal redirect find the state again (the module ctx is cleared).
// `check` points into the same pool: the zones with their keys, costs and
// limits, and the limiter's books for each.
struct RequestCtx {
  ngx_http_request_t* request;
  LocConf* lcf;  // the location that made the check
  bool answered;  // the phase handler has acted on the verdict
  bool counted_after;  // the log phase has counted the count=after zones
  // The line of each zone of `check` (its zones skip the lines of empty keys).
  const ZoneApplication** lines;
  rate_guard::LimitCheck check;
};
static_assert(std::is_trivially_destructible<RequestCtx>::value, "lives in an nginx pool");

// The lock of the blocked-key cache and the lease table: the mutex of their shared memory zone.
class ShmtxLock final : public rate_guard::CacheLock {
 public:
  explicit ShmtxLock(ngx_shmtx_t* mutex) : mutex_(mutex) {}
  void lock() override { ngx_shmtx_lock(mutex_); }
  void unlock() override { ngx_shmtx_unlock(mutex_); }

 private:
  ngx_shmtx_t* mutex_;
};

// The worker's Redis client, blocked-key cache and leases, made in init_process.
struct Worker {
  NgxEventLoop loop;
  RedisChecker checker;
  std::optional<rate_guard::BlockCache> cache;
  std::optional<rate_guard::LeaseTable> leases;
  std::optional<ShmtxLock> cache_lock;
  std::vector<rate_guard::Limiter::KnownZone> zones;
  std::unique_ptr<rate_guard::Timer> lease_timer;
  Worker(const rate_guard::RedisConfig& config, NgxRedisTls tls, rate_guard::RedisCounters* counters)
      : loop(tls), checker(config, loop, counters) {}
};
Worker* worker;

// The policy for every request of this worker. Until init_process gives it
// a client (or when there is none), every check goes to the fail policy.
rate_guard::Limiter limiter(nullptr, nullptr, nullptr, nullptr);

// The counters of all workers, in shared memory; set in every process that
// serves requests.
std::optional<rate_guard::Metrics> metrics;

ngx_http_output_header_filter_pt next_header_filter;

// The limiter's clock: read for each request, not nginx's cached
// ngx_current_msec (a coarse clock, read once per event-loop turn, or per
// timer_resolution), which may lag by milliseconds: a lease must not be spent
// past the end Redis named.
uint64_t monotonic_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

// ---- configuration -------------------------------------------------------

template <class T>
T* pool_new(ngx_pool_t* pool, T&& value) {
  ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(pool, sizeof(T));
  if (cln == nullptr) {
    return nullptr;
  }
  T* object = new (cln->data) T(std::forward<T>(value));
  cln->handler = [](void* data) { static_cast<T*>(data)->~T(); };
  return object;
}

std::vector<std::string_view> arguments_after(ngx_conf_t* cf, ngx_uint_t first) {
  auto* value = static_cast<ngx_str_t*>(cf->args->elts);
  std::vector<std::string_view> args;
  for (ngx_uint_t i = first; i < cf->args->nelts; i++) {
    args.push_back(to_string_view(value[i]));
  }
  return args;
}

char* conf_error(ngx_conf_t* cf, const std::string& message) {
  ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%*s", message.size(), message.data());
  return static_cast<char*>(NGX_CONF_ERROR);
}

ngx_str_t copy_str(ngx_pool_t* pool, std::string_view text) {
  ngx_str_t s{0, nullptr};
  s.data = static_cast<u_char*>(ngx_pnalloc(pool, text.size() + 1));
  if (s.data != nullptr) {
    ngx_memcpy(s.data, text.data(), text.size());
    s.data[text.size()] = '\0';
    s.len = text.size();
  }
  return s;
}

// Hostnames are resolved here, when the configuration loads, so that a worker
// never blocks on DNS.
// Replaces `host` by the first address it resolves to; a name (not an
// address) is kept in `name`, for TLS.
char* resolve_host(ngx_conf_t* cf, std::string& host, uint16_t port, std::string& name) {
  ngx_url_t u;
  ngx_memzero(&u, sizeof(ngx_url_t));
  std::string address = host.find(':') != std::string::npos
                            ? "[" + host + "]:" + std::to_string(port)
                            : host + ":" + std::to_string(port);
  u.url = copy_str(cf->pool, address);
  u.default_port = port;
  if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
    return conf_error(cf, "cannot resolve Redis address \"" + host + "\"" +
                              (u.err ? std::string(": ") + u.err : std::string()));
  }
  u_char text[NGX_SOCKADDR_STRLEN];
  size_t len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, text, sizeof(text), 0);
  if (!rate_guard::is_ip_address(host)) {
    name = host;
  }
  host.assign(reinterpret_cast<char*>(text), len);
  return NGX_CONF_OK;
}

char* resolve_redis_hosts(ngx_conf_t* cf, rate_guard::RedisConfig& config) {
  for (auto* endpoints : {&config.sentinels, &config.cluster_nodes}) {
    for (rate_guard::RedisEndpoint& endpoint : *endpoints) {
      if (char* rv = resolve_host(cf, endpoint.host, endpoint.port, endpoint.name); rv != NGX_CONF_OK) {
        return rv;
      }
    }
  }
  if (config.host.empty()) {
    return NGX_CONF_OK;
  }
  return resolve_host(cf, config.host, config.port, config.host_name);
}

ngx_http_complex_value_t* compile_complex_value(ngx_conf_t* cf, std::string_view text) {
  auto* value = static_cast<ngx_http_complex_value_t*>(ngx_pcalloc(cf->pool, sizeof(ngx_http_complex_value_t)));
  ngx_str_t source = copy_str(cf->pool, text);
  if (value == nullptr || source.data == nullptr) {
    return nullptr;
  }
  ngx_http_compile_complex_value_t ccv;
  ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
  ccv.cf = cf;
  ccv.value = &source;
  ccv.complex_value = value;
  return ngx_http_compile_complex_value(&ccv) == NGX_OK ? value : nullptr;
}

char* rate_guard_redis(ngx_conf_t* cf, ngx_command_t*, void* conf) {
  auto* mcf = static_cast<MainConf*>(conf);
  if (mcf->redis != nullptr) {
    return const_cast<char*>("is duplicate");
  }
  auto parsed = rate_guard::parse_redis_config(arguments_after(cf, 1));
  if (!parsed) {
    return conf_error(cf, parsed.error());
  }
  if (char* rv = resolve_redis_hosts(cf, parsed.value()); rv != NGX_CONF_OK) {
    return rv;
  }
  if (parsed.value().tls.on) {
    if (char* rv = make_redis_tls(cf, parsed.value().tls, &mcf->redis_tls); rv != NGX_CONF_OK) {
      return rv;
    }
  }
  mcf->redis = pool_new(cf->pool, std::move(parsed.value()));
  return mcf->redis != nullptr ? NGX_CONF_OK : static_cast<char*>(NGX_CONF_ERROR);
}

char* rate_guard_zone(ngx_conf_t* cf, ngx_command_t*, void* conf) {
  auto* mcf = static_cast<MainConf*>(conf);
  auto parsed = rate_guard::parse_zone_options(arguments_after(cf, 2));
  if (!parsed) {
    return conf_error(cf, parsed.error());
  }
  auto* zones = static_cast<Zone*>(mcf->zones.elts);
  for (ngx_uint_t i = 0; i < mcf->zones.nelts; i++) {
    if (to_string_view(zones[i].name) == parsed.value().name) {
      return conf_error(cf, "duplicate zone \"" + parsed.value().name + "\"");
    }
  }
  auto* zone = static_cast<Zone*>(ngx_array_push(&mcf->zones));
  if (zone == nullptr) {
    return static_cast<char*>(NGX_CONF_ERROR);
  }
  *zone = Zone{};
  zone->index = mcf->zones.nelts - 1;
  auto* value = static_cast<ngx_str_t*>(cf->args->elts);
  zone->key = compile_complex_value(cf, to_string_view(value[1]));
  if (zone->key == nullptr) {
    return static_cast<char*>(NGX_CONF_ERROR);
  }
  zone->config = pool_new(cf->pool, std::move(parsed.value()));
  if (zone->config == nullptr) {
    return static_cast<char*>(NGX_CONF_ERROR);
  }
  zone->name = copy_str(cf->pool, zone->config->name);
  if (!zone->config->rate_variable.empty()) {
    zone->rate = compile_complex_value(cf, zone->config->rate_variable);
    if (zone->rate == nullptr) {
      return static_cast<char*>(NGX_CONF_ERROR);
    }
  }
  zone->limits = {zone->config->limit, zone->config->window_ms, zone->config->burst};
  zone->cache_id = rate_guard::block_cache_zone_id(*zone->config, zone->limits);
  return NGX_CONF_OK;
}

// `rate_guard zone=NAME [cost=N|$var]`, or `rate_guard off`.
char* rate_guard_apply_zone(ngx_conf_t* cf, ngx_command_t*, void* conf) {
  auto* lcf = static_cast<LocConf*>(conf);
  auto* value = static_cast<ngx_str_t*>(cf->args->elts);
  if (cf->args->nelts == 2 && to_string_view(value[1]) == "off") {
    if (lcf->applied != NGX_CONF_UNSET_PTR) {
      return conf_error(cf, "\"rate_guard off\" cannot be combined with other \"rate_guard\" lines");
    }
    lcf->applied = nullptr;
    return NGX_CONF_OK;
  }
  if (lcf->applied == nullptr) {
    return conf_error(cf, "\"rate_guard off\" cannot be combined with other \"rate_guard\" lines");
  }
  auto parsed = rate_guard::parse_zone_use(arguments_after(cf, 1));
  if (!parsed) {
    return conf_error(cf, parsed.error());
  }
  if (lcf->applied == NGX_CONF_UNSET_PTR) {
    lcf->applied = ngx_array_create(cf->pool, 2, sizeof(ZoneApplication));
    if (lcf->applied == nullptr) {
      return static_cast<char*>(NGX_CONF_ERROR);
    }
  }
  auto* applied = static_cast<ZoneApplication*>(lcf->applied->elts);
  for (ngx_uint_t i = 0; i < lcf->applied->nelts; i++) {
    if (to_string_view(applied[i].zone_name) == parsed.value().zone) {
      return conf_error(cf, "zone \"" + parsed.value().zone + "\" is applied twice");
    }
  }
  auto* line = static_cast<ZoneApplication*>(ngx_array_push(lcf->applied));
  if (line == nullptr) {
    return static_cast<char*>(NGX_CONF_ERROR);
  }
  line->zone_name = copy_str(cf->pool, parsed.value().zone);
  line->zone = nullptr;
  line->cost = parsed.value().cost;
  line->cost_value = nullptr;
  if (!parsed.value().cost_variable.empty()) {
    line->cost_value = compile_complex_value(cf, parsed.value().cost_variable);
    if (line->cost_value == nullptr) {
      return static_cast<char*>(NGX_CONF_ERROR);
    }
  }
  line->count_after = parsed.value().count_after;
  line->if_value = nullptr;
  if (!parsed.value().if_variable.empty()) {
    line->if_value = compile_complex_value(cf, parsed.value().if_variable);
    if (line->if_value == nullptr) {
      return static_cast<char*>(NGX_CONF_ERROR);
    }
  }
  line->file = cf->conf_file->file.name;
  line->line = cf->conf_file->line;
  auto* mcf = static_cast<MainConf*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_rate_guard_module));
  mcf->used = true;
  if (line->count_after) {
    mcf->counts_after = true;
  }
  return NGX_CONF_OK;
}

char* rate_guard_metrics(ngx_conf_t* cf, ngx_command_t*, void*);

// The smallest cache worth a shared zone: nginx's slab allocator needs a few pages.
constexpr size_t kMinBlockCacheSize = 32 * 1024;

char* rate_guard_block_cache(ngx_conf_t* cf, ngx_command_t*, void* conf) {
  auto* mcf = static_cast<MainConf*>(conf);
  if (mcf->block_cache_size != NGX_CONF_UNSET_SIZE) {
    return const_cast<char*>("is duplicate");
  }
  auto* value = static_cast<ngx_str_t*>(cf->args->elts);
  if (to_string_view(value[1]) == "off") {
    mcf->block_cache_size = 0;
    return NGX_CONF_OK;
  }
  ssize_t size = ngx_parse_size(&value[1]);
  if (size == NGX_ERROR) {
    return conf_error(cf, "invalid size \"" + std::string(to_string_view(value[1])) + "\"");
  }
  if (static_cast<size_t>(size) < kMinBlockCacheSize) {
    return conf_error(cf, "block cache \"" + std::string(to_string_view(value[1])) +
                              "\" is too small, at least 32k");
  }
  mcf->block_cache_size = size;
  return NGX_CONF_OK;
}

// No C++ exception crosses into nginx: a directive handler that throws
// (std::bad_alloc) fails the configuration with a message instead.
template <char* (*Handler)(ngx_conf_t*, ngx_command_t*, void*)>
char* guarded(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) {
  try {
    return Handler(cf, cmd, conf);
  } catch (const std::exception& e) {
    return conf_error(cf, std::string("rate_guard: ") + e.what());
  }
}

ngx_conf_num_bounds_t status_bounds = {ngx_conf_check_num_bounds, 400, 599};

ngx_conf_enum_t fail_values[] = {
    {ngx_string("open"), kFailOpen},
    {ngx_string("closed"), kFailClosed},
    {ngx_null_string, 0},
};

ngx_conf_enum_t headers_values[] = {
    {ngx_string("off"), kHeadersOff},
    {ngx_string("on"), kHeadersOn},
    {ngx_string("draft"), kHeadersDraft},
    {ngx_null_string, 0},
};

ngx_conf_enum_t log_level_values[] = {
    {ngx_string("info"), NGX_LOG_INFO},
    {ngx_string("notice"), NGX_LOG_NOTICE},
    {ngx_string("warn"), NGX_LOG_WARN},
    {ngx_string("error"), NGX_LOG_ERR},
    {ngx_null_string, 0},
};

ngx_command_t commands[] = {
    {ngx_string("rate_guard_redis"), NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE, guarded<rate_guard_redis>,
     NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("rate_guard_zone"), NGX_HTTP_MAIN_CONF | NGX_CONF_2MORE, guarded<rate_guard_zone>,
     NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("rate_guard"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1234,
     guarded<rate_guard_apply_zone>,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("rate_guard_status"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_num_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(LocConf, status), &status_bounds},
    {ngx_string("rate_guard_fail"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_enum_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(LocConf, fail), &fail_values},
    {ngx_string("rate_guard_headers"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_enum_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(LocConf, headers), &headers_values},
    {ngx_string("rate_guard_dry_run"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_FLAG,
     ngx_conf_set_flag_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(LocConf, dry_run), nullptr},
    {ngx_string("rate_guard_log_level"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_enum_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(LocConf, log_level),
     &log_level_values},
    {ngx_string("rate_guard_metrics"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS, rate_guard_metrics,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("rate_guard_block_cache"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
     guarded<rate_guard_block_cache>, NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    ngx_null_command,
};

void* create_main_conf(ngx_conf_t* cf) {
  auto* mcf = static_cast<MainConf*>(ngx_pcalloc(cf->pool, sizeof(MainConf)));
  if (mcf == nullptr || ngx_array_init(&mcf->zones, cf->pool, 4, sizeof(Zone)) != NGX_OK) {
    return nullptr;
  }
  mcf->block_cache_size = NGX_CONF_UNSET_SIZE;
  return mcf;
}

constexpr size_t kDefaultBlockCacheSize = 1024 * 1024;

char* init_main_conf(ngx_conf_t*, void* conf) {
  auto* mcf = static_cast<MainConf*>(conf);
  ngx_conf_init_size_value(mcf->block_cache_size, kDefaultBlockCacheSize);
  return NGX_CONF_OK;
}

std::vector<std::string_view> zone_names(const MainConf* mcf) {
  std::vector<std::string_view> names;
  auto* zones = static_cast<Zone*>(mcf->zones.elts);
  for (ngx_uint_t i = 0; i < mcf->zones.nelts; i++) {
    names.push_back(to_string_view(zones[i].name));
  }
  return names;
}

// The counters keep their counts over a reload that keeps the zones.
ngx_int_t init_metrics_zone(ngx_shm_zone_t* shm_zone, void* data) {
  auto* pool = reinterpret_cast<ngx_slab_pool_t*>(shm_zone->shm.addr);
  auto* mcf = static_cast<MainConf*>(shm_zone->data);
  void* region = data;
  if (region == nullptr && shm_zone->shm.exists) {
    region = pool->data;
  }
  try {
    const std::vector<std::string_view> names = zone_names(mcf);
    if (region == nullptr) {
      region = ngx_slab_alloc(pool, rate_guard::Metrics::bytes_for(names.size()));
      if (region == nullptr) {
        return NGX_ERROR;
      }
      std::memset(region, 0, rate_guard::Metrics::bytes_for(names.size()));
      pool->data = region;
    }
    rate_guard::Metrics(region, names);
  } catch (const std::exception& e) {
    ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0, "rate_guard: %s", e.what());
    return NGX_ERROR;
  }
  shm_zone->data = region;
  return NGX_OK;
}

// A reload that keeps the zone's size keeps its entries: they name the zone
// configuration they came from (block_cache_zone_id), so changed zones miss.
ngx_int_t init_block_cache_zone(ngx_shm_zone_t* shm_zone, void* data) {
  auto* pool = reinterpret_cast<ngx_slab_pool_t*>(shm_zone->shm.addr);
  if (data != nullptr) {
    shm_zone->data = data;
    return NGX_OK;
  }
  if (shm_zone->shm.exists) {
    shm_zone->data = pool->data;
    return NGX_OK;
  }
  // All the free pages of the fresh zone, in one piece: the lease table's
  // fixed size at the end, the rest the cache's.
  const size_t bytes = pool->pfree * ngx_pagesize;
  auto* region = static_cast<SharedTablesRegion*>(ngx_slab_alloc(pool, bytes));
  const size_t lease_bytes = lease_table_bytes();
  if (region == nullptr || bytes < offsetof(SharedTablesRegion, memory) + lease_bytes) {
    ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0, "rate_guard: block cache zone is too small");
    return NGX_ERROR;
  }
  region->lease_bytes = lease_bytes;
  region->cache_bytes = (bytes - offsetof(SharedTablesRegion, memory) - lease_bytes) & ~size_t{7};
  rate_guard::BlockCache cache(region->memory, region->cache_bytes, true);
  rate_guard::LeaseTable leases(region->memory + region->cache_bytes, region->lease_bytes, true);
  pool->data = region;
  shm_zone->data = region;
  return NGX_OK;
}

void* create_loc_conf(ngx_conf_t* cf) {
  auto* lcf = static_cast<LocConf*>(ngx_pcalloc(cf->pool, sizeof(LocConf)));
  if (lcf == nullptr) {
    return nullptr;
  }
  lcf->applied = static_cast<ngx_array_t*>(NGX_CONF_UNSET_PTR);
  lcf->status = NGX_CONF_UNSET_UINT;
  lcf->fail = NGX_CONF_UNSET_UINT;
  lcf->headers = NGX_CONF_UNSET_UINT;
  lcf->dry_run = NGX_CONF_UNSET;
  lcf->log_level = NGX_CONF_UNSET_UINT;
  return lcf;
}

// Finds the zone of every line; errors name the line of the `rate_guard`
// directive, since merging happens after the whole http block is read.
char* resolve_applied(ngx_conf_t* cf, ngx_array_t* array) {
  if (array == nullptr || array == NGX_CONF_UNSET_PTR) {
    return NGX_CONF_OK;
  }
  auto* mcf = static_cast<MainConf*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_rate_guard_module));
  auto* applied = static_cast<ZoneApplication*>(array->elts);
  auto* zones = static_cast<Zone*>(mcf->zones.elts);
  for (ngx_uint_t i = 0; i < array->nelts; i++) {
    ZoneApplication& line = applied[i];
    if (line.zone != nullptr) {
      continue;
    }
    if (mcf->redis == nullptr) {
      ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                    "\"rate_guard\" needs a \"rate_guard_redis\" in the http block in %V:%ui",
                    &line.file, line.line);
      return static_cast<char*>(NGX_CONF_ERROR);
    }
    for (ngx_uint_t z = 0; z < mcf->zones.nelts; z++) {
      if (zones[z].name.len == line.zone_name.len &&
          ngx_strncmp(zones[z].name.data, line.zone_name.data, line.zone_name.len) == 0) {
        line.zone = &zones[z];
      }
    }
    if (line.zone == nullptr) {
      ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "unknown rate_guard zone \"%V\" in %V:%ui",
                    &line.zone_name, &line.file, line.line);
      return static_cast<char*>(NGX_CONF_ERROR);
    }
    if (line.cost_value == nullptr) {
      auto cost = rate_guard::configured_cost_for_zone(*line.zone->config, line.cost);
      if (!cost) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "%*s in %V:%ui", cost.error().size(),
                      cost.error().data(), &line.file, line.line);
        return static_cast<char*>(NGX_CONF_ERROR);
      }
    }
  }
  return NGX_CONF_OK;
}

char* merge_location(ngx_conf_t* cf, void* parent, void* child) {
  auto* prev = static_cast<LocConf*>(parent);
  auto* conf = static_cast<LocConf*>(child);
  // A level with its own lines does not inherit its parent's, as limit_req.
  ngx_conf_merge_ptr_value(conf->applied, prev->applied, nullptr);
  if (char* rv = resolve_applied(cf, conf->applied); rv != NGX_CONF_OK) {
    return rv;
  }
  ngx_conf_merge_uint_value(conf->status, prev->status, 429);
  ngx_conf_merge_uint_value(conf->fail, prev->fail, kFailOpen);
  ngx_conf_merge_uint_value(conf->headers, prev->headers, kHeadersOn);
  ngx_conf_merge_value(conf->dry_run, prev->dry_run, 0);
  ngx_conf_merge_uint_value(conf->log_level, prev->log_level, NGX_LOG_ERR);
  return NGX_CONF_OK;
}

char* merge_loc_conf(ngx_conf_t* cf, void* parent, void* child) {
  return exception_barrier(cf->log, static_cast<char*>(NGX_CONF_ERROR),
                           [=] { return merge_location(cf, parent, child); });
}

// ---- per request ---------------------------------------------------------

void ctx_cleanup(void* data) {
  exception_barrier(ngx_cycle->log, [data] { limiter.cancel(static_cast<RequestCtx*>(data)->check); });
}

RequestCtx* get_ctx(ngx_http_request_t* r) {
  auto* ctx = static_cast<RequestCtx*>(ngx_http_get_module_ctx(r, ngx_http_rate_guard_module));
  if (ctx != nullptr) {
    return ctx;
  }
  // An internal redirect (try_files, error_page, named location) cleared the
  // module ctx; the pool still holds it.
  for (ngx_pool_cleanup_t* cln = r->pool->cleanup; cln != nullptr; cln = cln->next) {
    if (cln->handler == ctx_cleanup) {
      ctx = static_cast<RequestCtx*>(cln->data);
      ngx_http_set_ctx(r, ctx, ngx_http_rate_guard_module);
      return ctx;
    }
  }
  return nullptr;
}

// The name of zone `index` of the request, for headers, variables and logs.
ngx_str_t zone_name(const RequestCtx* ctx, size_t index) {
  const std::string& name = ctx->check.zones[index].zone->name;
  return {name.size(), reinterpret_cast<u_char*>(const_cast<char*>(name.data()))};
}

// One line per rejection, the key escaped (binary bytes as \xHH) into the
// request pool.
void log_rejection(ngx_http_request_t* r, const RequestCtx* ctx) {
  const size_t index = ctx->check.decision.zone_index;
  auto* key = static_cast<char*>(ngx_pnalloc(r->pool, rate_guard::escaped_capacity(256)));
  if (key == nullptr) {
    return;
  }
  const size_t len = rate_guard::escape_for_log(ctx->check.zones[index].key, key);
  const ngx_str_t name = zone_name(ctx, index);
  ngx_log_error(ctx->lcf->log_level, r->connection->log, 0,
                "limiting requests%s by zone \"%V\", key \"%*s\"",
                ctx->check.verdict == Verdict::rejected_dry_run ? ", dry run," : "", &name, len, key);
}

// The verdict in nginx's terms.
ngx_int_t answer(ngx_http_request_t* r, RequestCtx* ctx) {
  ctx->answered = true;
  switch (ctx->check.verdict) {
    case Verdict::error:
      return ctx->lcf->fail == kFailClosed ? NGX_HTTP_SERVICE_UNAVAILABLE : NGX_DECLINED;
    case Verdict::rejected:
    case Verdict::rejected_dry_run: {
      if (r->connection->log->log_level >= ctx->lcf->log_level) {
        log_rejection(r, ctx);
      }
      return ctx->check.verdict == Verdict::rejected ? static_cast<ngx_int_t>(ctx->lcf->status)
                                                     : NGX_DECLINED;
    }
    default:
      return NGX_DECLINED;
  }
}

// Called from the Redis client (inside a hiredis callback); nothing here can
// throw, nginx's functions being C.
void on_verdict(void* data, rate_guard::LimitCheck&) noexcept {
  // Resume through the request's own write event: the phases run after this
  // Redis callback returns, as for any posted event of the connection.
  ngx_http_request_t* r = static_cast<RequestCtx*>(data)->request;
  r->read_event_handler = ngx_http_block_reading;
  r->write_event_handler = ngx_http_core_run_phases;
  ngx_post_event(r->connection->write, &ngx_posted_events);
}

// A per-request rate or cost that is not one: logged (at most once a second
// per worker, so a bad map cannot flood the log) and left to the fail policy.
void log_bad_value(ngx_http_request_t* r, const std::string& error) {
  static rate_guard::LogThrottle throttle;
  if (!throttle.allow(ngx_current_msec)) {
    return;
  }
  ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "rate_guard: %*s", error.size(), error.data());
}

// The limits and cost of one zone for this request, from its variables.
bool evaluate_zone(ngx_http_request_t* r, const ZoneApplication& line, rate_guard::ZoneRequest* request,
                   rate_guard::ZoneBooks* books) {
  const Zone* zone = line.zone;
  request->zone = zone->config;
  request->limits = zone->limits;
  request->cost = line.cost;
  books->block_cache_id = zone->cache_id;
  books->counters = zone->index;
  ngx_str_t text;
  if (zone->rate != nullptr) {
    if (ngx_http_complex_value(r, zone->rate, &text) != NGX_OK) {
      return false;
    }
    auto limits = rate_guard::request_limits(*zone->config, to_string_view(text));
    if (!limits) {
      log_bad_value(r, limits.error());
      return false;
    }
    request->limits = limits.value();
    books->block_cache_id = rate_guard::block_cache_zone_id(*zone->config, request->limits);
  }
  if (line.count_after) {
    request->cost = 0;  // is any quota left? The count comes after the response.
    return true;
  }
  if (line.cost_value != nullptr) {
    if (ngx_http_complex_value(r, line.cost_value, &text) != NGX_OK) {
      return false;
    }
    auto cost = rate_guard::request_cost(to_string_view(text));
    if (cost) {
      cost = rate_guard::cost_for_zone(*zone->config, cost.value());
    }
    if (!cost) {
      log_bad_value(r, cost.error());
      return false;
    }
    request->cost = cost.value();
  }
  if (zone->rate != nullptr || line.cost_value != nullptr) {
    // A cost above the limit could never pass: a 429 whose Retry-After lies.
    auto fits = rate_guard::cost_within_limits(*zone->config, request->limits, request->cost);
    if (!fits) {
      log_bad_value(r, fits.error() + ": the request can never pass");
      return false;
    }
  }
  return true;
}

ngx_int_t start_check(ngx_http_request_t* r, LocConf* lcf) {
  const size_t total = lcf->applied->nelts;
  auto* applied = static_cast<ZoneApplication*>(lcf->applied->elts);
  auto* ctx = static_cast<RequestCtx*>(ngx_palloc(r->pool, sizeof(RequestCtx)));
  auto* zones = static_cast<rate_guard::ZoneRequest*>(ngx_palloc(r->pool, total * sizeof(rate_guard::ZoneRequest)));
  auto* books = static_cast<rate_guard::ZoneBooks*>(ngx_palloc(r->pool, total * sizeof(rate_guard::ZoneBooks)));
  auto* lines = static_cast<const ZoneApplication**>(ngx_palloc(r->pool, total * sizeof(ZoneApplication*)));
  if (ctx == nullptr || zones == nullptr || books == nullptr || lines == nullptr) {
    return NGX_HTTP_INTERNAL_SERVER_ERROR;
  }
  new (ctx) RequestCtx{r, lcf, false, false, lines, {}};
  rate_guard::LimitCheck& check = ctx->check;
  check.zones = zones;
  check.books = books;
  check.dry_run = lcf->dry_run;
  for (size_t i = 0; i < total && !check.invalid_zone; i++) {
    ngx_str_t key;
    if (ngx_http_complex_value(r, applied[i].zone->key, &key) != NGX_OK) {
      return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    if (key.len == 0) {
      continue;  // an empty key is not limited: map and geo exempt clients this way
    }
    const size_t n = check.count++;
    new (&zones[n]) rate_guard::ZoneRequest();
    new (&books[n]) rate_guard::ZoneBooks();
    lines[n] = &applied[i];
    if (!evaluate_zone(r, applied[i], &zones[n], &books[n])) {
      check.invalid_zone = n;  // the zones after it are not evaluated
    }
    zones[n].key = to_string_view(key);
  }
  if (check.count == 0) {
    return NGX_DECLINED;
  }
  ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(r->pool, 0);
  if (cln == nullptr) {
    return NGX_HTTP_INTERNAL_SERVER_ERROR;
  }
  cln->handler = ctx_cleanup;
  cln->data = ctx;
  ngx_http_set_ctx(r, ctx, ngx_http_rate_guard_module);

  if (limiter.check(check, monotonic_ms(), on_verdict, ctx) != Verdict::none) {
    return answer(r, ctx);
  }
  // Waiting for Redis: on_verdict resumes the request.
  r->read_event_handler = ngx_http_test_reading;  // notices a client that leaves
  r->write_event_handler = ngx_http_request_empty_handler;
  return NGX_AGAIN;
}

ngx_int_t run_access_phase(ngx_http_request_t* r) {
  RequestCtx* ctx = get_ctx(r);
  if (ctx != nullptr) {
    if (ctx->check.waiting()) {
      return NGX_AGAIN;
    }
    // The first run after the reply acts on it; an internal redirect later
    // finds the request already checked.
    return ctx->answered ? NGX_DECLINED : answer(r, ctx);
  }
  auto* lcf = static_cast<LocConf*>(ngx_http_get_module_loc_conf(r, ngx_http_rate_guard_module));
  if (lcf->applied == nullptr || lcf->applied->nelts == 0) {
    return NGX_DECLINED;
  }
  return start_check(r, lcf);
}

ngx_int_t access_handler(ngx_http_request_t* r) {
  // Subrequests are part of their main request, which is checked itself.
  if (r != r->main) {
    return NGX_DECLINED;
  }
  return exception_barrier(r->connection->log, static_cast<ngx_int_t>(NGX_HTTP_INTERNAL_SERVER_ERROR),
                           [r] { return run_access_phase(r); });
}

// ---- counting after the response -----------------------------------------

// Whether `value` (an `if=`, or a cost) says "nothing to count": empty or "0".
bool counts_nothing(const ngx_str_t& value) {
  return value.len == 0 || (value.len == 1 && value.data[0] == '0');
}

// The count=after zones of a request that went on (passed, or the fail
// policy let it through), each with its `if=` and cost evaluated now, when
// $status and $upstream_http_* are known. The count goes to Redis with the
// next batch; nothing waits for it.
void count_after_response(ngx_http_request_t* r, RequestCtx* ctx) {
  const rate_guard::LimitCheck& check = ctx->check;
  const bool went_on = check.verdict == Verdict::passed ||
                       (check.verdict == Verdict::error && ctx->lcf->fail == kFailOpen);
  if (ctx->counted_after || !went_on) {
    return;
  }
  ctx->counted_after = true;
  ngx_str_t text;
  for (size_t n = 0; n < check.count; n++) {
    const ZoneApplication& line = *ctx->lines[n];
    if (!line.count_after || (check.invalid_zone && n >= *check.invalid_zone)) {
      continue;
    }
    if (line.if_value != nullptr &&
        (ngx_http_complex_value(r, line.if_value, &text) != NGX_OK || counts_nothing(text))) {
      continue;
    }
    rate_guard::ZoneRequest request = check.zones[n];
    request.cost = line.cost;
    if (line.cost_value != nullptr) {
      if (ngx_http_complex_value(r, line.cost_value, &text) != NGX_OK || counts_nothing(text)) {
        continue;  // the upstream reported no cost
      }
      auto cost = rate_guard::request_cost(to_string_view(text));
      if (cost) {
        cost = rate_guard::cost_for_zone(*request.zone, cost.value());
      }
      if (!cost) {
        log_bad_value(r, cost.error() + ": not counted");
        limiter.charge_invalid(check.books[n]);
        continue;
      }
      request.cost = cost.value();
    }
    limiter.charge(request, check.books[n]);
  }
}

ngx_int_t log_handler(ngx_http_request_t* r) {
  // A subrequest logged (log_subrequest on) shares its main request's pool,
  // where get_ctx() would find the main request's check: only the client's
  // request is counted, with its own status.
  if (r != r->main) {
    return NGX_OK;
  }
  RequestCtx* ctx = get_ctx(r);
  if (ctx == nullptr) {
    return NGX_OK;
  }
  return exception_barrier(r->connection->log, static_cast<ngx_int_t>(NGX_OK), [r, ctx] {
    count_after_response(r, ctx);
    return static_cast<ngx_int_t>(NGX_OK);
  });
}

// A charge the Redis client could not deliver.
void on_charge_lost(void*, uint32_t counters, uint64_t units) noexcept {
  limiter.charge_lost(counters, units);
}

// ---- response headers ----------------------------------------------------

// Longest header value: a quoted zone name and three numbers.
constexpr size_t kMaxHeaderValue = rate_guard::Metrics::kMaxZoneName + 3 * NGX_INT64_LEN + 16;

// Adds "name: value", the value formatted by ngx_snprintf into the request pool.
template <class... Args>
bool add_header(ngx_http_request_t* r, ngx_str_t name, const char* format, Args... args) {
  auto* h = static_cast<ngx_table_elt_t*>(ngx_list_push(&r->headers_out.headers));
  auto* value = static_cast<u_char*>(ngx_pnalloc(r->pool, kMaxHeaderValue));
  if (h == nullptr || value == nullptr) {
    return false;
  }
  h->hash = 1;
  h->key = name;
  h->value.data = value;
  h->value.len = ngx_snprintf(value, kMaxHeaderValue, format, args...) - value;
#if nginx_version >= 1023000
  h->next = nullptr;
#endif
  return true;
}

bool add_rate_limit_headers(ngx_http_request_t* r, const RequestCtx* ctx) {
  const rate_guard::Decision& d = ctx->check.decision;
  const uint64_t reset = rate_guard::reset_seconds(d.reset_ms);
  bool ok;
  if (ctx->lcf->headers == kHeadersDraft) {
    // draft-ietf-httpapi-ratelimit-headers: structured fields naming the policy.
    const ngx_str_t name = zone_name(ctx, d.zone_index);
    const uint64_t window_s = (ctx->check.zones[d.zone_index].limits.window_ms + 999) / 1000;
    ok = add_header(r, ngx_string("RateLimit-Policy"), "\"%V\";q=%uL;w=%uL", &name, d.limit, window_s) &&
         add_header(r, ngx_string("RateLimit"), "\"%V\";r=%uL;t=%uL", &name, d.remaining, reset);
  } else {
    ok = add_header(r, ngx_string("X-RateLimit-Limit"), "%uL", d.limit) &&
         add_header(r, ngx_string("X-RateLimit-Remaining"), "%uL", d.remaining) &&
         add_header(r, ngx_string("X-RateLimit-Reset"), "%uL", reset);
  }
  // Only with a rejection status: `error_page 429 = /page` may answer 200.
  const ngx_uint_t status = r->headers_out.status;
  if (ok && ctx->check.verdict == Verdict::rejected &&
      (status == ctx->lcf->status || status == NGX_HTTP_TOO_MANY_REQUESTS || status == NGX_HTTP_SERVICE_UNAVAILABLE)) {
    ok = add_header(r, ngx_string("Retry-After"), "%uL", rate_guard::retry_after_seconds(d.reset_ms));
  }
  return ok;
}

ngx_int_t add_headers_and_go_on(ngx_http_request_t* r) {
  if (r != r->main) {
    return next_header_filter(r);
  }
  RequestCtx* ctx = get_ctx(r);
  if (ctx == nullptr || ctx->lcf->headers == kHeadersOff ||
      (ctx->check.verdict != Verdict::passed && ctx->check.verdict != Verdict::rejected &&
       ctx->check.verdict != Verdict::rejected_dry_run)) {
    return next_header_filter(r);
  }
  if (!add_rate_limit_headers(r, ctx)) {
    return NGX_ERROR;
  }
  return next_header_filter(r);
}

ngx_int_t header_filter(ngx_http_request_t* r) {
  return exception_barrier(r->connection->log, static_cast<ngx_int_t>(NGX_ERROR), [r] { return add_headers_and_go_on(r); });
}

// ---- variables -----------------------------------------------------------

enum VariableField : uintptr_t { kStatus, kLimit, kRemaining, kReset, kZone };

// The value formatted by ngx_snprintf into the request pool.
template <class... Args>
ngx_int_t set_variable(ngx_http_request_t* r, ngx_http_variable_value_t* v, const char* format, Args... args) {
  auto* data = static_cast<u_char*>(ngx_pnalloc(r->pool, kMaxHeaderValue));
  if (data == nullptr) {
    return NGX_ERROR;
  }
  v->data = data;
  v->len = static_cast<unsigned>(ngx_snprintf(data, kMaxHeaderValue, format, args...) - data);
  v->valid = 1;
  v->no_cacheable = 0;
  v->not_found = 0;
  return NGX_OK;
}

ngx_int_t evaluate_variable(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t field) {
  RequestCtx* ctx = get_ctx(r->main);
  if (ctx == nullptr || ctx->check.verdict == Verdict::none) {
    v->not_found = 1;
    return NGX_OK;
  }
  const rate_guard::Decision& d = ctx->check.decision;
  if (field == kStatus) {
    static ngx_str_t names[] = {ngx_null_string, ngx_string("PASSED"), ngx_string("REJECTED"),
                                ngx_string("REJECTED_DRY_RUN"), ngx_string("ERROR")};
    const ngx_str_t& name = names[static_cast<int>(ctx->check.verdict)];
    v->data = name.data;
    v->len = static_cast<unsigned>(name.len);
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    return NGX_OK;
  }
  if (ctx->check.verdict == Verdict::error) {  // the fail policy decided: no numbers
    v->not_found = 1;
    return NGX_OK;
  }
  switch (field) {
    case kLimit:
      return set_variable(r, v, "%uL", d.limit);
    case kRemaining:
      return set_variable(r, v, "%uL", d.remaining);
    case kReset:
      return set_variable(r, v, "%uL", rate_guard::reset_seconds(d.reset_ms));
    case kZone: {
      const ngx_str_t name = zone_name(ctx, d.zone_index);
      return set_variable(r, v, "%V", &name);
    }
  }
  v->not_found = 1;
  return NGX_OK;
}

ngx_int_t get_variable(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t field) {
  return exception_barrier(r->connection->log, static_cast<ngx_int_t>(NGX_ERROR),
                           [=] { return evaluate_variable(r, v, field); });
}

ngx_http_variable_t variables[] = {
    {ngx_string("rate_guard_status"), nullptr, get_variable, kStatus, NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("rate_guard_limit"), nullptr, get_variable, kLimit, NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("rate_guard_remaining"), nullptr, get_variable, kRemaining, NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("rate_guard_reset"), nullptr, get_variable, kReset, NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("rate_guard_zone"), nullptr, get_variable, kZone, NGX_HTTP_VAR_NOCACHEABLE, 0},
    ngx_http_null_variable,
};

// ---- metrics -------------------------------------------------------------

ngx_int_t metrics_handler(ngx_http_request_t* r) {
  if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
    return NGX_HTTP_NOT_ALLOWED;
  }
  ngx_int_t rc = ngx_http_discard_request_body(r);
  if (rc != NGX_OK) {
    return rc;
  }
  std::string body;
  try {
    if (metrics) {
      body = rate_guard::render_prometheus(*metrics);
    }
  } catch (const std::exception& e) {
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, "rate_guard: %s", e.what());
    return NGX_HTTP_INTERNAL_SERVER_ERROR;
  }
  r->headers_out.status = NGX_HTTP_OK;
  r->headers_out.content_length_n = static_cast<off_t>(body.size());
  ngx_str_set(&r->headers_out.content_type, "text/plain; version=0.0.4");
  r->headers_out.content_type_len = r->headers_out.content_type.len;
  rc = ngx_http_send_header(r);
  if (rc == NGX_ERROR || rc > NGX_OK || r->header_only || body.empty()) {
    return rc;
  }
  ngx_buf_t* b = ngx_create_temp_buf(r->pool, body.size());
  if (b == nullptr) {
    return NGX_HTTP_INTERNAL_SERVER_ERROR;
  }
  b->last = ngx_cpymem(b->last, body.data(), body.size());
  b->last_buf = 1;
  b->last_in_chain = 1;
  ngx_chain_t out = {b, nullptr};
  return ngx_http_output_filter(r, &out);
}

char* rate_guard_metrics(ngx_conf_t* cf, ngx_command_t*, void*) {
  auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
  clcf->handler = metrics_handler;
  return NGX_CONF_OK;
}

// ---- registration --------------------------------------------------------

ngx_int_t preconfiguration(ngx_conf_t* cf) {
  for (ngx_http_variable_t* v = variables; v->name.len != 0; v++) {
    ngx_http_variable_t* var = ngx_http_add_variable(cf, &v->name, v->flags);
    if (var == nullptr) {
      return NGX_ERROR;
    }
    var->get_handler = v->get_handler;
    var->data = v->data;
  }
  return NGX_OK;
}

ngx_int_t postconfiguration(ngx_conf_t* cf) {
  // nginx runs a phase's handlers from the last pushed to the first: put ours
  // first, so that it runs after every other PREACCESS handler. The cheap
  // local checks (limit_req, limit_conn) then reject before a request uses
  // fleet quota, and realip's location-level address is the one keyed on.
  auto* cmcf = static_cast<ngx_http_core_main_conf_t*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module));
  ngx_array_t* handlers = &cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers;
  if (ngx_array_push(handlers) == nullptr) {
    return NGX_ERROR;
  }
  auto* h = static_cast<ngx_http_handler_pt*>(handlers->elts);
  ngx_memmove(h + 1, h, (handlers->nelts - 1) * sizeof(ngx_http_handler_pt));
  h[0] = access_handler;
  auto* mcf = static_cast<MainConf*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_rate_guard_module));
  if (mcf->counts_after) {
    auto* log = static_cast<ngx_http_handler_pt*>(ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers));
    if (log == nullptr) {
      return NGX_ERROR;
    }
    *log = log_handler;
  }

  if (mcf->used && mcf->block_cache_size > 0) {
    ngx_str_t name = ngx_string("rate_guard_block_cache");
    mcf->block_cache_zone = ngx_shared_memory_add(cf, &name, mcf->block_cache_size + lease_table_bytes(),
                                                  &ngx_http_rate_guard_module);
    if (mcf->block_cache_zone == nullptr) {
      return NGX_ERROR;
    }
    mcf->block_cache_zone->init = init_block_cache_zone;
  }

  // Sized for this configuration's zones: a configuration with more zones
  // gets a new shared zone.
  ngx_str_t name = ngx_string("rate_guard_metrics");
  const size_t bytes = rate_guard::Metrics::bytes_for(mcf->zones.nelts);
  const size_t size = ngx_align(bytes + 8 * ngx_pagesize, ngx_pagesize);
  mcf->metrics_zone = ngx_shared_memory_add(cf, &name, size, &ngx_http_rate_guard_module);
  if (mcf->metrics_zone == nullptr) {
    return NGX_ERROR;
  }
  mcf->metrics_zone->init = init_metrics_zone;
  mcf->metrics_zone->data = mcf;

  next_header_filter = ngx_http_top_header_filter;
  ngx_http_top_header_filter = header_filter;
  return NGX_OK;
}

ngx_int_t init_process(ngx_cycle_t* cycle) {
  if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE) {
    return NGX_OK;
  }
  auto* mcf = static_cast<MainConf*>(ngx_http_cycle_get_module_main_conf(cycle, ngx_http_rate_guard_module));
  if (mcf == nullptr) {
    return NGX_OK;
  }
  try {
    if (mcf->metrics_zone != nullptr) {
      metrics.emplace(mcf->metrics_zone->data, zone_names(mcf));
    }
    rate_guard::Metrics* counters = metrics ? &*metrics : nullptr;
    limiter = rate_guard::Limiter(nullptr, nullptr, nullptr, counters);
    if (mcf->redis == nullptr || !mcf->used) {
      return NGX_OK;
    }
    worker = new Worker(*mcf->redis, mcf->redis_tls, metrics ? &metrics->redis() : nullptr);
    if (mcf->block_cache_zone != nullptr) {
      auto* region = static_cast<SharedTablesRegion*>(mcf->block_cache_zone->data);
      auto* pool = reinterpret_cast<ngx_slab_pool_t*>(mcf->block_cache_zone->shm.addr);
      worker->cache.emplace(region->memory, region->cache_bytes, false);
      worker->leases.emplace(region->memory + region->cache_bytes, region->lease_bytes, false);
      worker->cache_lock.emplace(&pool->mutex);
    }
    limiter = rate_guard::Limiter(&worker->checker, worker->cache ? &*worker->cache : nullptr,
                                  worker->cache_lock ? &*worker->cache_lock : nullptr, counters,
                                  worker->leases ? &*worker->leases : nullptr);
    auto* zones = static_cast<Zone*>(mcf->zones.elts);
    for (ngx_uint_t i = 0; i < mcf->zones.nelts; i++) {
      worker->zones.push_back({zones[i].config, zones[i].index});
    }
    limiter.set_zones(worker->zones.data(), worker->zones.size(), rate_guard::redis_target_id(*mcf->redis));
    worker->checker.set_charge_lost(on_charge_lost, nullptr);
    if (worker->leases) {
      worker->lease_timer = worker->loop.make_timer(
          [] {
            limiter.return_leases(monotonic_ms());
            worker->lease_timer->arm(kLeaseReturnIntervalMs);
          },
          false);
      worker->lease_timer->arm(kLeaseReturnIntervalMs);
    }
    // The time cached in the master at fork may be old: a connect timeout
    // armed from it would expire at once.
    ngx_time_update();
    worker->checker.start();
  } catch (const std::exception& e) {
    ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "rate_guard: cannot start: %s", e.what());
    return NGX_ERROR;
  }
  return NGX_OK;
}

void exit_process(ngx_cycle_t*) {
  if (worker != nullptr) {
    worker->lease_timer.reset();  // before the loop it belongs to
  }
  limiter = rate_guard::Limiter(nullptr, nullptr, nullptr, nullptr);
  delete worker;
  worker = nullptr;
  metrics.reset();
}

ngx_http_module_t module_ctx = {
    preconfiguration, postconfiguration, create_main_conf, init_main_conf, nullptr,
    nullptr,          create_loc_conf,   merge_loc_conf,
};

}  // namespace

ngx_module_t ngx_http_rate_guard_module = {
    NGX_MODULE_V1,
    &module_ctx,
    commands,
    NGX_HTTP_MODULE,
    nullptr,       // init master
    nullptr,       // init module
    init_process,  // init process
    nullptr,       // init thread
    nullptr,       // exit thread
    exit_process,  // exit process
    nullptr,       // exit master
    NGX_MODULE_V1_PADDING,
};
