#include "redis/redis_connection.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

namespace rate_guard {

struct RedisConnection::Callback {
  RedisConnection* owner = nullptr;
  ReplyFn reply = nullptr;
  void* data = nullptr;
  bool persistent = false;  // a subscription's: called for every message
};

RedisConnection::RedisConnection(EventLoop& loop) : loop_(loop) {}

RedisConnection::~RedisConnection() {
  close();
}

bool RedisConnection::open(const RedisAddress& address, LostFn lost, std::string* error) {
  close();
  address_ = address;
  redisAsyncContext* context = address.unix_path.empty()
                                   ? redisAsyncConnect(address.endpoint.host.c_str(), address.endpoint.port)
                                   : redisAsyncConnectUnix(address.unix_path.c_str());
  if (context == nullptr) {
    *error = "out of memory";
    return false;
  }
  if (context->err != 0) {
    *error = context->errstr;
    redisAsyncFree(context);
    return false;
  }
  if (!loop_.attach(context)) {
    *error = "cannot attach it to the event loop";
    redisAsyncFree(context);
    return false;
  }
  context->data = this;
  redisAsyncSetConnectCallback(context, on_connect);
  redisAsyncSetDisconnectCallback(context, on_disconnect);
  context_ = context;
  made_ = false;
  lost_ = std::move(lost);
  return true;
}

void RedisConnection::close() {
  redisAsyncContext* context = context_;
  context_ = nullptr;
  lost_ = nullptr;
  if (context != nullptr) {
    context->data = nullptr;  // no `lost` for our own close
    redisAsyncFree(context);  // the replies awaited come back as nullptr
  }
}

// hiredis frees the context right after either callback.
void RedisConnection::on_connect(const redisAsyncContext* context, int status) {
  auto* self = static_cast<RedisConnection*>(context->data);
  if (self == nullptr || context != self->context_) {
    return;
  }
  if (status == REDIS_OK) {
    self->made_ = true;
  } else {
    guard_c_callback(self->loop_, [self, context] { self->ended(context->errstr); });
  }
}

void RedisConnection::on_disconnect(const redisAsyncContext* context, int status) {
  auto* self = static_cast<RedisConnection*>(context->data);
  if (self != nullptr && context == self->context_) {
    guard_c_callback(self->loop_,
                     [self, context, status] { self->ended(status == REDIS_OK ? "connection closed" : context->errstr); });
  }
}

void RedisConnection::ended(std::string_view reason) {
  context_ = nullptr;
  LostFn lost = std::move(lost_);
  lost_ = nullptr;
  if (lost) {
    lost(reason);
  }
}

RedisConnection::Callback* RedisConnection::acquire(ReplyFn reply, void* data, bool persistent) {
  Callback* callback;
  if (free_callbacks_.empty()) {
    callbacks_.push_back(std::make_unique<Callback>());
    callback = callbacks_.back().get();
  } else {
    callback = free_callbacks_.back();
    free_callbacks_.pop_back();
  }
  *callback = {this, reply, data, persistent};
  return callback;
}

void RedisConnection::release(Callback* callback) {
  callback->reply = nullptr;
  callback->data = nullptr;
  free_callbacks_.push_back(callback);
}

void RedisConnection::on_reply(redisAsyncContext*, void* reply_ptr, void* privdata) {
  auto* callback = static_cast<Callback*>(privdata);
  RedisConnection* self = callback->owner;
  const ReplyFn reply = callback->reply;
  void* data = callback->data;
  if (!callback->persistent || reply_ptr == nullptr) {
    self->release(callback);  // before the call: it may send again
  }
  if (reply != nullptr) {
    guard_c_callback(self->loop_, [reply, data, reply_ptr] { reply(data, static_cast<redisReply*>(reply_ptr)); });
  }
}

bool RedisConnection::send_auth(const std::string& username, const std::string& password, ReplyFn reply,
                                void* data) {
  if (password.empty()) {
    return true;
  }
  if (username.empty()) {
    return send({"AUTH", password}, reply, data);
  }
  return send({"AUTH", username, password}, reply, data);
}

bool RedisConnection::send(const std::vector<std::string_view>& args, ReplyFn reply, void* data) {
  if (context_ == nullptr) {
    return false;
  }
  // Commands are few and small here (handshakes, questions): the argument
  // arrays may live on the stack.
  constexpr size_t kMaxArgs = 8;
  const char* argv[kMaxArgs];
  size_t lengths[kMaxArgs];
  if (args.size() > kMaxArgs) {
    return false;
  }
  for (size_t i = 0; i < args.size(); i++) {
    argv[i] = args[i].data();
    lengths[i] = args[i].size();
  }
  Callback* callback = acquire(reply, data, false);
  if (redisAsyncCommandArgv(context_, on_reply, callback, static_cast<int>(args.size()), argv, lengths) !=
      REDIS_OK) {
    release(callback);
    return false;
  }
  return true;
}

bool RedisConnection::send_formatted(const char* command, size_t length, ReplyFn reply, void* data) {
  if (context_ == nullptr) {
    return false;
  }
  Callback* callback = acquire(reply, data, false);
  if (redisAsyncFormattedCommand(context_, on_reply, callback, command, length) != REDIS_OK) {
    release(callback);
    return false;
  }
  return true;
}

bool RedisConnection::subscribe(std::string_view channel, ReplyFn message, void* data) {
  if (context_ == nullptr) {
    return false;
  }
  const char* argv[] = {"SUBSCRIBE", channel.data()};
  const size_t lengths[] = {9, channel.size()};
  Callback* callback = acquire(message, data, true);
  if (redisAsyncCommandArgv(context_, on_reply, callback, 2, argv, lengths) != REDIS_OK) {
    release(callback);
    return false;
  }
  return true;
}

}  // namespace rate_guard
