#include "redis_event_adapter.hpp"

#include <hiredis/async.h>

namespace {

ngx_connection_t* connection_of(void* privdata) {
  return static_cast<ngx_connection_t*>(privdata);
}

void on_readable(ngx_event_t* event) {
  auto* c = static_cast<ngx_connection_t*>(event->data);
  exception_barrier(c->log, [c] { redisAsyncHandleRead(static_cast<redisAsyncContext*>(c->data)); });
}

void on_writable(ngx_event_t* event) {
  auto* c = static_cast<ngx_connection_t*>(event->data);
  exception_barrier(c->log, [c] { redisAsyncHandleWrite(static_cast<redisAsyncContext*>(c->data)); });
}

// Level-triggered: hiredis reads at most one buffer per call, so an
// edge-triggered event could leave replies unread in the socket.
void add_event(ngx_event_t* event, ngx_int_t kind) {
  if (!event->active) {
    ngx_add_event(event, kind, NGX_LEVEL_EVENT);
  }
}

void del_event(ngx_event_t* event, ngx_int_t kind) {
  if (event->active) {
    ngx_del_event(event, kind, 0);
  }
}

void add_read(void* privdata) { add_event(connection_of(privdata)->read, NGX_READ_EVENT); }
void del_read(void* privdata) { del_event(connection_of(privdata)->read, NGX_READ_EVENT); }
void add_write(void* privdata) { add_event(connection_of(privdata)->write, NGX_WRITE_EVENT); }
void del_write(void* privdata) { del_event(connection_of(privdata)->write, NGX_WRITE_EVENT); }

// hiredis closes the socket itself right after this: give the connection
// back without closing its fd.
void cleanup(void* privdata) {
  ngx_connection_t* c = connection_of(privdata);
  del_event(c->read, NGX_READ_EVENT);
  del_event(c->write, NGX_WRITE_EVENT);
  if (c->read->posted) {
    ngx_delete_posted_event(c->read);
  }
  if (c->write->posted) {
    ngx_delete_posted_event(c->write);
  }
  auto* context = static_cast<redisAsyncContext*>(c->data);
  context->ev.data = nullptr;
  ngx_free_connection(c);
  c->fd = (ngx_socket_t) -1;
}

class NgxTimer final : public rate_guard::Timer {
 public:
  NgxTimer(std::function<void()> fire, bool keeps_alive) : fire_(std::move(fire)) {
    ngx_memzero(&event_, sizeof(event_));
    event_.handler = on_timer;
    event_.data = this;
    event_.log = ngx_cycle->log;
    // A cancelable timer does not hold back a worker's graceful exit.
    event_.cancelable = keeps_alive ? 0 : 1;
  }
  ~NgxTimer() override { disarm(); }

  // A delay of 0 means "when this turn of the event loop ends": a posted
  // event, which nginx runs after every event and timer of the turn.
  void arm(uint64_t delay_ms) override {
    disarm();
    if (delay_ms == 0) {
      ngx_post_event(&event_, &ngx_posted_events);
    } else {
      ngx_add_timer(&event_, static_cast<ngx_msec_t>(delay_ms));
    }
  }
  void disarm() override {
    if (event_.timer_set) {
      ngx_del_timer(&event_);
    }
    if (event_.posted) {
      ngx_delete_posted_event(&event_);
    }
  }
  bool armed() const override { return event_.timer_set || event_.posted; }

 private:
  static void on_timer(ngx_event_t* event) {
    auto* self = static_cast<NgxTimer*>(event->data);
    exception_barrier(event->log, [self] { self->fire_(); });
  }

  std::function<void()> fire_;
  ngx_event_t event_;
};

}  // namespace

uint64_t NgxEventLoop::now_ms() {
  return ngx_current_msec;
}

bool NgxEventLoop::attach(redisAsyncContext* context) {
  if (context->ev.data != nullptr) {
    return false;
  }
  ngx_connection_t* c = ngx_get_connection(context->c.fd, ngx_cycle->log);
  if (c == nullptr) {
    return false;
  }
  c->data = context;
  c->log = ngx_cycle->log;
  c->read->handler = on_readable;
  c->write->handler = on_writable;
  c->read->log = c->log;
  c->write->log = c->log;
  context->ev.data = c;
  context->ev.addRead = add_read;
  context->ev.delRead = del_read;
  context->ev.addWrite = add_write;
  context->ev.delWrite = del_write;
  context->ev.cleanup = cleanup;
  return true;
}

std::unique_ptr<rate_guard::Timer> NgxEventLoop::make_timer(std::function<void()> fire,
                                                            bool keeps_alive) {
  return std::make_unique<NgxTimer>(std::move(fire), keeps_alive);
}

ngx_uint_t ngx_log_level_of(rate_guard::LogLevel level) {
  switch (level) {
    case rate_guard::LogLevel::info: return NGX_LOG_INFO;
    case rate_guard::LogLevel::notice: return NGX_LOG_NOTICE;
    case rate_guard::LogLevel::warn: return NGX_LOG_WARN;
    case rate_guard::LogLevel::error: return NGX_LOG_ERR;
  }
  return NGX_LOG_ERR;
}

void NgxEventLoop::log(rate_guard::LogLevel level, std::string_view message) {
  ngx_log_error(ngx_log_level_of(level), ngx_cycle->log, 0, "%*s", message.size(), message.data());
}
