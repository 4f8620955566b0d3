// grpc_server.cc - the peer: a gRPC C++ async server (one completion queue and one thread per
// --threads, the layout gRPC's own benchmarks use for their fastest C++ server) whose Track
// answers a TrackResponse held in memory: the gateway's own cached reply, read from --payload
// (bytes captured by `loadgen --dump-payload`). The request is decoded (as the gateway decodes
// it) and not looked at.
//
//   grpc_server --listen 127.0.0.1:PORT --payload FILE [--threads N] [--calls-per-cq N]
//
// Prints "grpc_server ready on ADDR" on stdout; SIGINT/SIGTERM stop it.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "bench.grpc.pb.h"

using shipgate::bench::v1::TrackBench;
using shipgate::v1::TrackRequest;
using shipgate::v1::TrackResponse;

namespace {

const TrackResponse *g_reply; // shared, read-only

// One call in the async state machine: requested -> answered -> done.
class Call {
      public:
	Call(TrackBench::AsyncService *svc, grpc::ServerCompletionQueue *cq)
	    : svc_(svc), cq_(cq), responder_(&ctx_)
	{
		svc_->RequestTrack(&ctx_, &req_, &responder_, cq_, cq_, this);
	}
	void
	Proceed(bool ok)
	{
		if (!answered_) {
			if (!ok) { // the server is shutting down
				delete this;
				return;
			}
			new Call(svc_, cq_); // keep one request posted in its place
			answered_ = true;
			responder_.Finish(*g_reply, grpc::Status::OK, this);
			return;
		}
		delete this;
	}

      private:
	TrackBench::AsyncService *svc_;
	grpc::ServerCompletionQueue *cq_;
	grpc::ServerContext ctx_;
	TrackRequest req_;
	grpc::ServerAsyncResponseWriter<TrackResponse> responder_;
	bool answered_ = false;
};

void
serve(TrackBench::AsyncService *svc, grpc::ServerCompletionQueue *cq, int calls)
{
	for (int i = 0; i < calls; i++)
		new Call(svc, cq);
	void *tag;
	bool ok;
	while (cq->Next(&tag, &ok))
		static_cast<Call *>(tag)->Proceed(ok);
}

} // namespace

int
main(int argc, char **argv)
{
	std::string addr = "127.0.0.1:7600", payload;
	int threads = (int)std::thread::hardware_concurrency(), calls = 1024;
	for (int i = 1; i + 1 < argc; i += 2) {
		std::string a = argv[i], v = argv[i + 1];
		if (a == "--listen")
			addr = v;
		else if (a == "--payload")
			payload = v;
		else if (a == "--threads")
			threads = std::stoi(v);
		else if (a == "--calls-per-cq")
			calls = std::stoi(v);
		else {
			std::fprintf(stderr, "usage: grpc_server --listen ADDR --payload FILE "
			                     "[--threads N] [--calls-per-cq N]\n");
			return 2;
		}
	}
	if (threads < 1)
		threads = 1;
	TrackResponse reply;
	if (!payload.empty()) {
		std::ifstream f(payload, std::ios::binary);
		std::stringstream ss;
		ss << f.rdbuf();
		if (!f || !reply.ParseFromString(ss.str())) {
			std::fprintf(stderr, "grpc_server: %s is not a TrackResponse\n", payload.c_str());
			return 1;
		}
	}
	g_reply = &reply;

	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, nullptr); // inherited by gRPC's threads

	TrackBench::AsyncService svc;
	grpc::ServerBuilder b;
	int port = 0; // ADDR may end in :0 (a free port); the one bound is printed
	b.AddListeningPort(addr, grpc::InsecureServerCredentials(), &port);
	b.RegisterService(&svc);
	std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs;
	for (int i = 0; i < threads; i++)
		cqs.push_back(b.AddCompletionQueue());
	std::unique_ptr<grpc::Server> server = b.BuildAndStart();
	if (!server) {
		std::fprintf(stderr, "grpc_server: cannot listen on %s\n", addr.c_str());
		return 1;
	}
	std::vector<std::thread> ts;
	for (int i = 0; i < threads; i++)
		ts.emplace_back(serve, &svc, cqs[i].get(), calls);
	std::string host = addr.substr(0, addr.rfind(':'));
	std::printf("grpc_server ready on %s:%d (%d threads, reply %zu bytes)\n", host.c_str(), port,
	            threads, reply.ByteSizeLong());
	std::fflush(stdout);

	int sig;
	sigwait(&sigs, &sig);
	server->Shutdown(std::chrono::system_clock::now());
	for (auto &cq : cqs)
		cq->Shutdown();
	for (auto &t : ts)
		t.join();
	return 0;
}
