#include "ask_in_turn.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

namespace rate_guard {

void send_auth(redisAsyncContext* context, const std::string& username, const std::string& password,
               void (*callback)(redisAsyncContext*, void*, void*), void* privdata) {
  if (password.empty()) {
    return;
  }
  if (username.empty()) {
    redisAsyncCommand(context, callback, privdata, "AUTH %b", password.data(), password.size());
  } else {
    redisAsyncCommand(context, callback, privdata, "AUTH %b %b", username.data(), username.size(), password.data(),
                      password.size());
  }
}

AskInTurn::AskInTurn(EventLoop& loop, std::string what, ErrorLog log_error)
    : loop_(loop), what_(std::move(what)), log_error_(std::move(log_error)) {
  timer_ = loop_.make_timer(
      [this] {
        log_error_(server_text() + " did not answer in time");
        next_server();
      },
      false);
}

AskInTurn::~AskInTurn() {
  shutdown();
}

void AskInTurn::shutdown() {
  timer_->disarm();
  accept_ = nullptr;
  done_ = nullptr;
  close();
}

std::string AskInTurn::server_text() const {
  return what_ + " " + endpoint_text(question_.servers[asking_]);
}

// Our own close: callbacks still pending in hiredis see no owner and return.
void AskInTurn::close() {
  redisAsyncContext* context = context_;
  context_ = nullptr;
  if (context != nullptr) {
    context->data = nullptr;
    redisAsyncFree(context);
  }
}

void AskInTurn::ask(Question question, Accept accept, Done done) {
  close();
  question_ = std::move(question);
  accept_ = std::move(accept);
  done_ = std::move(done);
  ask_server(0);
}

void AskInTurn::ask_server(size_t index) {
  timer_->disarm();
  if (index >= question_.servers.size()) {
    finish(false);
    return;
  }
  asking_ = index;
  const RedisEndpoint& server = question_.servers[index];
  redisAsyncContext* context = redisAsyncConnect(server.host.c_str(), server.port);
  if (context == nullptr || context->err != 0 || !loop_.attach(context)) {
    log_error_("cannot connect to " + server_text() +
               (context != nullptr ? std::string(": ") + context->errstr : std::string()));
    if (context != nullptr) {
      redisAsyncFree(context);
    }
    ask_server(index + 1);
    return;
  }
  context->data = this;
  redisAsyncSetConnectCallback(context, on_connect);
  redisAsyncSetDisconnectCallback(context, on_disconnect);
  context_ = context;
  send_auth(context, question_.username, question_.password, nullptr, nullptr);
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const std::string& arg : question_.command) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  redisAsyncCommandArgv(context, on_reply, nullptr, static_cast<int>(argv.size()), argv.data(), lengths.data());
  timer_->arm(question_.timeout_ms);
}

void AskInTurn::next_server() {
  close();
  ask_server(asking_ + 1);
}

void AskInTurn::finish(bool answered) {
  timer_->disarm();
  Done done = std::move(done_);
  done_ = nullptr;
  accept_ = nullptr;
  if (done) {
    done(answered);
  }
}

void AskInTurn::on_connect(const redisAsyncContext* context, int status) {
  auto* self = static_cast<AskInTurn*>(context->data);
  if (self == nullptr || status == REDIS_OK || context != self->context_) {
    return;
  }
  // hiredis frees the context after this callback.
  self->context_ = nullptr;
  self->log_error_("cannot connect to " + self->server_text() + ": " + context->errstr);
  self->ask_server(self->asking_ + 1);
}

void AskInTurn::on_disconnect(const redisAsyncContext* context, int) {
  auto* self = static_cast<AskInTurn*>(context->data);
  if (self == nullptr || context != self->context_) {
    return;
  }
  self->context_ = nullptr;
  self->ask_server(self->asking_ + 1);
}

void AskInTurn::on_reply(redisAsyncContext* context, void* reply_ptr, void*) {
  auto* self = static_cast<AskInTurn*>(context->data);
  auto* reply = static_cast<redisReply*>(reply_ptr);
  if (self == nullptr || context != self->context_ || reply == nullptr) {
    return;
  }
  std::string error;
  if (!self->accept_(reply, self->question_.servers[self->asking_], &error)) {
    self->log_error_(self->server_text() + ": " + error);
    self->next_server();
    return;
  }
  self->close();
  self->finish(true);
}

}  // namespace rate_guard
