// grpc_client.cc - the gRPC peer's load client: closed loop, --contexts calls in flight on
// async stubs (one completion queue per --threads, calls spread over them), the same histogram
// (../hist.c), warm-up, count/duration bounds and JSON shape as bench/loadgen, so that the
// percentiles compare one to one.
//
//   grpc_client --target 127.0.0.1:PORT [--contexts N] [--channels N] [--threads N]
//               [--duration S] [--warmup S] [--requests N] [--pid PID] [--label T] [--json]
//
// --channels: HTTP/2 connections (each channel gets its own subchannel); default 1, as
// loadgen's one nng socket (one TCP connection) per 1000 contexts.
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "bench.grpc.pb.h"
#include "hist.h"
#include "procstat.h"

using shipgate::bench::v1::TrackBench;
using shipgate::v1::TrackRequest;
using shipgate::v1::TrackResponse;

namespace {

struct Run {
	uint64_t t_window = 0;           // ns: recording starts
	uint64_t t_end = 0;              // ns: no new call after this
	uint64_t requests = 0;           // count bound, 0: duration bound
	std::atomic<uint64_t> claimed{0}; // count bound: calls claimed
	bh_hist *hist = nullptr;         // OK latencies in the window
	std::atomic<uint64_t> ok{0}, ok_window{0}, errors{0}, reply_bytes{0}, t_last{0};
	std::atomic<uint64_t> codes[17] = {};
	TrackRequest req;
};

// One call slot: a closed-loop client of its own.
struct Slot {
	TrackBench::Stub *stub;
	grpc::CompletionQueue *cq;
	std::unique_ptr<grpc::ClientContext> ctx;
	TrackResponse resp;
	grpc::Status status;
	std::unique_ptr<grpc::ClientAsyncResponseReader<TrackResponse>> rpc;
	uint64_t t0 = 0;
	bool in_window = false;
};

void
start(Run *r, Slot *s)
{
	s->ctx = std::make_unique<grpc::ClientContext>();
	s->ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
	s->resp.Clear();
	s->t0 = bh_now_ns();
	s->in_window = r->requests > 0 || s->t0 >= r->t_window;
	s->rpc = s->stub->PrepareAsyncTrack(s->ctx.get(), r->req, s->cq);
	s->rpc->StartCall();
	s->rpc->Finish(&s->resp, &s->status, s);
}

bool
more(Run *r)
{
	if (r->requests > 0)
		return r->claimed.fetch_add(1) < r->requests;
	return bh_now_ns() < r->t_end;
}

// Drives the slots of one completion queue until they are all done.
void
drive(Run *r, grpc::CompletionQueue *cq, std::vector<Slot *> slots)
{
	size_t active = 0;
	for (Slot *s : slots) {
		if (!more(r))
			break;
		start(r, s);
		active++;
	}
	void *tag;
	bool ok;
	while (active > 0 && cq->Next(&tag, &ok)) {
		Slot *s = static_cast<Slot *>(tag);
		uint64_t now = bh_now_ns();
		uint64_t last = r->t_last.load();
		while (now > last && !r->t_last.compare_exchange_weak(last, now))
			;
		int code = s->status.error_code();
		r->codes[code >= 0 && code < 17 ? code : 2]++;
		if (ok && s->status.ok() && s->resp.has_tracking()) {
			r->ok++;
			r->reply_bytes = s->resp.ByteSizeLong();
			if (s->in_window) {
				bh_record(r->hist, now - s->t0);
				r->ok_window++;
			}
		} else {
			r->errors++;
		}
		if (more(r))
			start(r, s);
		else
			active--;
	}
	cq->Shutdown();
	while (cq->Next(&tag, &ok))
		;
}

} // namespace

int
main(int argc, char **argv)
{
	std::string target = "127.0.0.1:7600", label;
	int contexts = 1, channels = 1, threads = 1, pid = 0;
	double duration = 5, warmup = 1;
	bool json = false;
	Run r;
	for (int i = 1; i < argc; i++) {
		std::string a = argv[i];
		if (a == "--json") {
			json = true;
			continue;
		}
		if (i + 1 >= argc) {
			std::fprintf(stderr, "grpc_client: %s needs a value\n", a.c_str());
			return 2;
		}
		std::string v = argv[++i];
		if (a == "--target")
			target = v;
		else if (a == "--contexts")
			contexts = std::stoi(v);
		else if (a == "--channels")
			channels = std::stoi(v);
		else if (a == "--threads")
			threads = std::stoi(v);
		else if (a == "--duration")
			duration = std::stod(v);
		else if (a == "--warmup")
			warmup = std::stod(v);
		else if (a == "--requests")
			r.requests = std::stoull(v);
		else if (a == "--pid")
			pid = std::stoi(v);
		else if (a == "--label")
			label = v;
		else {
			std::fprintf(stderr, "usage: grpc_client --target ADDR [--contexts N] "
			                     "[--channels N] [--threads N] [--duration S] [--warmup S] "
			                     "[--requests N] [--pid PID] [--label T] [--json]\n");
			return 2;
		}
	}
	if (contexts < 1 || channels < 1 || threads < 1)
		return 2;
	r.req.set_provider(shipgate::v1::PROVIDER_BOSONLINE);
	r.req.set_tracking_number("IDE987651421");
	r.hist = bh_new();

	std::vector<std::shared_ptr<grpc::Channel>> chans;
	std::vector<std::unique_ptr<TrackBench::Stub>> stubs;
	for (int i = 0; i < channels; i++) {
		grpc::ChannelArguments args;
		args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1); // a connection per channel
		args.SetInt("shipgate.bench.channel", i);
		chans.push_back(grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
		                                          args));
		if (!chans.back()->WaitForConnected(std::chrono::system_clock::now() +
		                                    std::chrono::seconds(5))) {
			std::fprintf(stderr, "grpc_client: cannot connect to %s\n", target.c_str());
			return 1;
		}
		stubs.push_back(TrackBench::NewStub(chans.back()));
	}
	std::vector<std::unique_ptr<grpc::CompletionQueue>> cqs;
	for (int i = 0; i < threads; i++)
		cqs.push_back(std::make_unique<grpc::CompletionQueue>());
	std::vector<Slot> slots(contexts);
	std::vector<std::vector<Slot *>> per_cq(threads);
	for (int i = 0; i < contexts; i++) {
		slots[i].stub = stubs[i % channels].get();
		slots[i].cq = cqs[i % threads].get();
		per_cq[i % threads].push_back(&slots[i]);
	}

	ps_sampler ps;
	ps_start(&ps, pid, 10);
	double cpu0 = ps_self_cpu_s();
	uint64_t t_start = bh_now_ns();
	r.t_window = r.requests ? t_start : t_start + (uint64_t)(warmup * 1e9);
	r.t_end = r.requests ? UINT64_MAX : r.t_window + (uint64_t)(duration * 1e9);
	std::vector<std::thread> ts;
	for (int i = 0; i < threads; i++)
		ts.emplace_back(drive, &r, cqs[i].get(), per_cq[i]);
	for (auto &t : ts)
		t.join();
	double cpu1 = ps_self_cpu_s();
	if (pid > 0)
		std::this_thread::sleep_for(std::chrono::milliseconds(100));
	ps_stop(&ps);

	uint64_t last = r.t_last.load();
	double wall_s = (double)(last > t_start ? last - t_start : 0) / 1e9;
	double window_s = r.requests ? wall_s : duration;
	double tput = window_s > 0 ? (double)r.ok_window.load() / window_s : 0;
	std::fprintf(stderr,
	             "grpc_client %s: closed loop, %d calls in flight on %d channels, %d cq "
	             "threads, %.2f s: ok %" PRIu64 " errors %" PRIu64 ", %.0f ok/s, reply %" PRIu64
	             " bytes\n",
	             label.c_str(), contexts, channels, threads, wall_s, r.ok.load(), r.errors.load(),
	             tput, r.reply_bytes.load());
	bh_print(r.hist, "  latency", stderr);
	if (json) {
		std::printf("{\"tool\": \"grpc_client\", \"label\": \"%s\", \"mode\": \"closed\", "
		            "\"url\": \"%s\", \"contexts\": %d, \"channels\": %d, \"threads\": %d, "
		            "\"window_s\": %.4f, \"wall_s\": %.4f, \"ok\": %" PRIu64
		            ", \"errors\": %" PRIu64 ", \"throughput_rps\": %.1f, \"reply_bytes\": %" PRIu64
		            ", \"client_cpu_s\": %.3f, \"status\": {",
		            label.c_str(), target.c_str(), contexts, channels, threads, window_s, wall_s,
		            r.ok.load(), r.errors.load(), tput, r.reply_bytes.load(), cpu1 - cpu0);
		bool first = true;
		for (int i = 0; i < 17; i++)
			if (r.codes[i].load()) {
				std::printf("%s\"%d\": %" PRIu64, first ? "" : ", ", i, r.codes[i].load());
				first = false;
			}
		std::printf("}, \"lat\": {");
		bh_json(r.hist, stdout);
		std::printf("}, ");
		ps_json(&ps, stdout);
		std::printf("}\n");
	}
	bh_free(r.hist);
	return r.errors.load() == 0 && r.ok.load() > 0 ? 0 : 3;
}
